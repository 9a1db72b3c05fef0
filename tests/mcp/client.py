"""An MCP client for vigil's tests: the official Python SDK (`mcp` on PyPI) over stdio.

usage: client.py SCENARIO VIGIL [ARGS...]   (VIGIL ARGS is the server command)
Prints one JSON object per line: what it saw. In the `restart` scenario it waits for a line
on stdin between steps, so the test can kill and restart the watcher.
"""
import asyncio
import json
import os
import sys
import time

import jsonschema
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def out(**kw):
    print(json.dumps(kw), flush=True)


def text_of(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def keywords(schema, found):
    if isinstance(schema, dict):
        for k, v in schema.items():
            found.add(k)
            keywords(v, found)
    elif isinstance(schema, list):
        for v in schema:
            keywords(v, found)
    return found


async def call(session, name, args):
    result = await session.call_tool(name, args)
    body = text_of(result)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    return result.isError, body, data


async def tools(session, root):
    listed = await session.list_tools()
    names = sorted(t.name for t in listed.tools)
    for t in listed.tools:
        # Each schema is a valid JSON Schema, and valid arguments pass it.
        jsonschema.Draft202012Validator.check_schema(t.inputSchema)
    used = set()
    for t in listed.tools:
        keywords(t.inputSchema, used)
    search_schema = next(t.inputSchema for t in listed.tools if t.name == "search")
    jsonschema.validate({"query": "x", "limit": 3, "sync": True}, search_schema)
    out(step="tools", names=names, keywords=sorted(used))

    err, body, status = await call(session, "status", {})
    out(step="status", error=err, files=status and status.get("files_indexed"))

    # Read-your-writes: write, then at once search with sync.
    path = os.path.join(root, "fresh_note.md")
    with open(path, "w") as f:
        f.write("The quartermaster counts barrels of tar.\n")
    err, body, res = await call(session, "search", {"query": "quartermaster", "mode": "text"})
    out(step="search_nosync", error=err, hits=[h["path"] for h in res["hits"]],
        freshness=res.get("freshness"), written_ms=int(os.path.getmtime(path) * 1000))
    err, body, res = await call(session, "search", {"query": "quartermaster", "mode": "text", "sync": True})
    out(step="search_sync", error=err, hits=[h["path"] for h in res["hits"]], freshness=res.get("freshness"))

    err, body, res = await call(session, "read", {"path": "fresh_note.md", "start_line": 1, "end_line": 5})
    out(step="read", error=err, text=res and res.get("text"))
    err, body, _ = await call(session, "read", {"path": "../outside.txt"})
    out(step="read_dotdot", error=err, message=body)
    err, body, _ = await call(session, "read", {"path": "escape_link"})
    out(step="read_symlink", error=err, message=body)

    # A modification: the change row says which lines changed (to chunk precision).
    harbour = os.path.join(root, "src", "harbour.rs")
    os.makedirs(os.path.dirname(harbour), exist_ok=True)
    with open(harbour, "a") as f:
        f.write("\n" * 40 + "fn undock_ship() { /* the pilot boards */ }\n")
    await call(session, "search", {"query": "undock", "mode": "text", "sync": True})
    err, body, res = await call(session, "changes", {"minutes": 10})
    rows = res["changes"] if res else []
    out(step="changes", error=err, paths=[r["path"] for r in rows],
        modified=[r for r in rows if r["path"].endswith("harbour.rs") and r["kind"] == "modified"])

    err, body, _ = await call(session, "search", {"query": "x", "mode": "sideways"})
    out(step="bad_mode", error=err, message=body)


async def restart(session, root):
    err, body, res = await call(session, "search", {"query": "harbour", "mode": "text"})
    out(step="before", error=err, hits=len(res["hits"]) if res else None)
    sys.stdin.readline()  # the test kills the watcher
    started = time.monotonic()
    err, body, _ = await call(session, "search", {"query": "harbour", "mode": "text"})
    out(step="dead", error=err, message=body, seconds=time.monotonic() - started)
    sys.stdin.readline()  # the test starts a watcher again
    err, body, res = await call(session, "search", {"query": "harbour", "mode": "text"})
    out(step="after", error=err, hits=len(res["hits"]) if res else None)


async def over_http(socket_path):
    # The streamable-HTTP transport at /mcp on the watcher's Unix socket.
    import httpx
    from mcp.client.streamable_http import streamable_http_client

    client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket_path), timeout=30)
    async with streamable_http_client("http://localhost/mcp", http_client=client) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out(step="initialize", server=init.serverInfo.name, protocol=init.protocolVersion)
            listed = await session.list_tools()
            out(step="tools", names=sorted(t.name for t in listed.tools))
            err, body, res = await call(session, "search", {"query": "harbour", "mode": "text", "sync": True})
            out(step="search", error=err, hits=[h["path"] for h in res["hits"]] if res else body)


async def main():
    scenario, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    root = os.environ["TEST_ROOT"]
    if scenario == "http":
        await over_http(command)
        return
    params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out(step="initialize", server=init.serverInfo.name, protocol=init.protocolVersion)
            await {"tools": tools, "restart": restart}[scenario](session, root)


asyncio.run(main())
