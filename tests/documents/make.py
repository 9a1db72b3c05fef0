"""Writes the documents tests/documents.rs indexes, with the real tools people use.

python3 make.py OUT_DIR: fpdf2 for PDFs, nbformat for notebooks, python-docx for Word,
odfpy for OpenDocument, ebooklib for EPUB, plain files for HTML.
Good documents first, then hostile ones (encrypted, truncated, 10,000 objects on a page,
a zip bomb dressed as a DOCX, a 50 MB notebook output, HTML nested 100,000 deep).
"""

import os
import sys
import zipfile

import docx
import nbformat
from ebooklib import epub
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from odf.opendocument import OpenDocumentText
from odf.text import H, P


def pdf_pages(pages):
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return pdf


def main(out):
    os.makedirs(os.path.join(out, "hostile"), exist_ok=True)
    path = lambda name: os.path.join(out, name)
    hostile = lambda name: os.path.join(out, "hostile", name)

    # Good documents.
    pdf_pages(
        [
            "Keeping a lighthouse: an introduction for new keepers.",
            "The fresnel lens bends the lamp's light into one beam.",
            "In winter storms the foghorn sounds every thirty seconds.",
        ]
    ).output(path("paper.pdf"))
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tide tables\nHow to read the tide tables of a port."),
        nbformat.v4.new_code_cell(
            "def high_water(port):\n    return port.tides[0]",
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="outputonlyword\n")],
        ),
    ]
    nbformat.write(nb, path("notes.ipynb"))
    with open(path("page.html"), "w") as f:
        f.write(
            "<!doctype html><html><head><title>Harbour</title>"
            "<script>var trackingpixel = 1;</script></head><body>"
            "<h1>Harbour rules</h1><p>Moor only at the <b>visitor pontoon</b>.</p>"
            "<h2>Fees</h2><p>Mooring fees are paid at the harbourmaster's office.</p>"
            "</body></html>"
        )
    manual = docx.Document()
    manual.add_heading("Anchoring", level=1)
    prose = " ".join(f"Step {i}: let out more rode and watch the bearings." for i in range(40))
    manual.add_paragraph("Drop the anchor slowly and let the boat drift back. " + prose)
    manual.add_heading("Chain", level=2)
    table = manual.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "depth", "windlass scope"
    table.cell(1, 0).text, table.cell(1, 1).text = "10 m", "50 m of chain"
    manual.save(path("manual.docx"))
    report = OpenDocumentText()
    report.text.addElement(H(outlinelevel=1, text="Sail care"))
    report.text.addElement(P(text="Inspect the seams every season. " + prose))
    report.text.addElement(H(outlinelevel=2, text="Washing"))
    report.text.addElement(P(text="Rinse the mainsail with fresh water & dry it."))
    report.save(path("report.odt"))
    book = epub.EpubBook()
    book.set_identifier("seamanship-1")
    book.set_title("Seamanship")
    book.set_language("en")
    chapters = [
        ("knots.xhtml", "Knots", "The bowline makes a fixed loop at the end of a line."),
        ("weather.xhtml", "Weather", "A falling barometer warns of a gale."),
    ]
    items = []
    for name, title, text in chapters:
        item = epub.EpubHtml(title=title, file_name=name, lang="en")
        item.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = items
    epub.write_epub(path("book.epub"), book)
    with open(path("plain.txt"), "w") as f:
        f.write("the rest of the tree: a plain note about barnacles\n")

    # Hostile documents, in hostile/ (the 50 MB notebook output stays beside the good ones:
    # admitted by a larger size limit, its cells are indexed and the output left out).
    encrypted = pdf_pages(["The cormorant dives for fish."])
    encrypted.set_encryption(
        owner_password="owner",
        user_password="reader",
        encryption_method=EncryptionMethod.RC4,
    )
    encrypted.output(hostile("encrypted.pdf"))
    whole = bytes(pdf_pages(["The albatross glides for days."] * 3).output())
    with open(hostile("truncated.pdf"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    crowded = FPDF()
    crowded.set_font("helvetica", size=4)
    crowded.add_page()
    for i in range(10_000):
        crowded.rect(1 + (i % 100) * 2, 1 + (i // 100) * 2.8, 1, 1)
    crowded.text(10, 290, "a pelican on a crowded page")
    crowded.output(hostile("crowded.pdf"))
    # A zip bomb with a real Word package around it: document.xml inflates to 1 GiB.
    with zipfile.ZipFile(path("manual.docx")) as real:
        parts = {n: real.read(n) for n in real.namelist() if n != "word/document.xml"}
    with zipfile.ZipFile(hostile("bomb.docx"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(b"<w:document>")
            for _ in range(1024):
                f.write(b"\0" * (1 << 20))
    big = nbformat.v4.new_notebook()
    big.cells = [
        nbformat.v4.new_markdown_cell("Plotting the puffin census."),
        nbformat.v4.new_code_cell(
            "print(census)",
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="x" * (50 << 20))],
        ),
    ]
    nbformat.write(big, path("big-output.ipynb"))
    with open(hostile("nested.html"), "w") as f:
        f.write("<html><body>" + "<div>" * 100_000 + "a kittiwake" + "</div>" * 100_000)
        f.write("</body></html>")


if __name__ == "__main__":
    main(sys.argv[1])
