"""Writes the documents tests/documents.rs indexes, with the real tools people use.

python3 make.py OUT_DIR: fpdf2 for PDFs, nbformat for notebooks, plain files for HTML.
Good documents first, then hostile ones (encrypted, truncated, 10,000 objects on a page,
a zip bomb dressed as a DOCX, a 50 MB notebook output, HTML nested 100,000 deep).
"""

import os
import sys
import zipfile

import nbformat
from fpdf import FPDF
from fpdf.enums import EncryptionMethod


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
    with zipfile.ZipFile(hostile("bomb.docx"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"<w:document>" + b"\0" * (200 << 20) + b"</w:document>")
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
