"""Drives an MCP server with the official Python SDK (`mcp`, installed by scripts/mcp-clients).

Reads a plan (JSON) on stdin and prints a report (JSON) on stdout, so the Rust test decides
what to ask and asserts on what came back; nothing here knows about K8-gents.

Plan:
  {"server": {"command": [...]} | {"url": "...", "headers": {...}},
   "mode": "legacy" | "auto",
   "steps": [{"op": "list_tools"} | {"op": "list_resources"} (every page) |
             {"op": "list_templates"} | {"op": "read", "uri": U} |
             {"op": "call", "name": N, "args": {...}} |
             {"op": "listen", "uris": [...], "then": STEP, "seconds": S}]}
Report:
  {"protocol_version": V, "results": [{"ok": true, "result": ..., "pages": n} | {"ok": false, "error": E}]}
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def dump(value):
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run_step(client, step):
    op = step["op"]
    if op == "list_tools":
        return {"result": dump(await client.list_tools())}
    if op == "list_templates":
        return {"result": dump(await client.list_resource_templates())}
    if op == "list_resources":
        resources, cursor, pages = [], None, 0
        while True:
            page = await client.list_resources(cursor=cursor)
            pages += 1
            resources.extend(dump(r) for r in page.resources)
            cursor = page.next_cursor
            if not cursor:
                return {"result": {"resources": resources}, "pages": pages}
    if op == "read":
        return {"result": dump(await client.read_resource(step["uri"], cache_mode="bypass"))}
    if op == "call":
        return {"result": dump(await client.call_tool(step["name"], step.get("args") or {}))}
    if op == "subscribe":
        return {"result": dump(await client.subscribe_resource(step["uri"]))}
    if op == "read_pages":
        uri, pages, keys = step["uri"], 0, []
        while uri:
            result = await client.read_resource(uri, cache_mode="bypass")
            doc = json.loads(result.contents[0].text)
            pages += 1
            keys.extend(f"{i['namespace']}/{i['name']}" for i in doc["items"])
            uri = doc.get("next_uri")
        return {"result": {"pages": pages, "items": len(keys), "unique": len(set(keys))}}
    if op == "listen":
        events = []
        async with client.listen(resources_list_changed=True, resource_subscriptions=step["uris"]) as sub:

            async def collect():
                async for event in sub:
                    events.append(repr(event))

            collector = asyncio.create_task(collect())
            # Let the server take its baseline before the change.
            await asyncio.sleep(step.get("delay", 2))
            then = await run_step(client, step["then"])
            await asyncio.sleep(step.get("seconds", 4))
            collector.cancel()
        return {"result": {"events": events, "then": then}}
    raise ValueError(f"unknown op {op}")


async def raw_post(url, headers, step):
    """POSTs bytes as they are (malformed, oversized, or abandoned after `timeout`)."""
    if "size" in step:
        body = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + "a" * step["size"] + '"}}'
    else:
        body = step["body"]
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers, **step.get("headers", {})}
    async with httpx2.AsyncClient(timeout=step.get("timeout", 30)) as http:
        try:
            response = await http.post(url, content=body.encode(), headers=sent)
            return {"result": {"status": response.status_code, "body": response.text[:2000]}}
        except httpx2.TimeoutException:
            return {"result": {"status": 0, "abandoned": True}}


async def main():
    plan = json.load(sys.stdin)
    server = plan["server"]
    if "command" in server:
        target = StdioServerParameters(command=server["command"][0], args=server["command"][1:], env=server.get("env"))
        http = None
    else:
        http = httpx2.AsyncClient(headers=server.get("headers") or {}, timeout=60)
        target = streamable_http_client(server["url"], http_client=http)
    results = []
    notifications = []

    async def on_message(message):
        notifications.append(repr(message))

    async def steps(client):
        for step in plan["steps"]:
            try:
                if step["op"] == "raw_post":
                    outcome = await raw_post(server["url"], server.get("headers") or {}, step)
                else:
                    outcome = await run_step(client, step)
                outcome["ok"] = True
            except Exception as e:  # the report carries every failure; the Rust test judges
                outcome = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            results.append(outcome)
            if step.get("sleep"):
                await asyncio.sleep(step["sleep"])

    version = None
    if plan.get("connect", True):
        async with Client(target, mode=plan.get("mode", "auto"), message_handler=on_message, cache=None) as client:
            await steps(client)
            version = client.protocol_version
    else:
        await steps(None)
    if http is not None:
        await http.aclose()
    json.dump({"protocol_version": version, "results": results, "notifications": notifications}, sys.stdout)


asyncio.run(main())
