"""The floor of a stack: a bare tornado handler relaying to Cortex with one upstream client.

    python -m benchmarks.floor_relay --client aiohttp --upstream http://127.0.0.1:PORT --pat PAT

No auth, no shaping, no ledger: ``POST /v1/messages`` is sent as it came to Cortex's Messages API
with the PAT added, and the answer's status, content type and body are relayed as they arrive
(one flush per chunk). Whatever our gateway adds above the floor of the same client is ours; what
the floors differ by is the client. Prints one JSON line ``{"port": N}`` when it listens and serves
until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading

import tornado.web

from benchmarks.upstream_clients import CLIENTS, SLUGS, Upstream

MESSAGES_PATH = "/api/v2/cortex/v1/messages"


class Relay(tornado.web.RequestHandler):
    def initialize(self, upstream: Upstream, url: str, pat: str) -> None:
        self.upstream, self.url, self.pat = upstream, url, pat

    async def post(self) -> None:
        headers = {
            "authorization": f"Bearer {self.pat}",
            "content-type": "application/json",
            "anthropic-version": self.request.headers.get("anthropic-version", "2023-06-01"),
        }
        answer = await self.upstream.post(self.url, self.request.body, headers)
        try:
            self.set_status(answer.status)
            self.set_header("content-type", answer.content_type)
            async for chunk in answer.chunks():
                self.write(chunk)
                await self.flush()
        finally:
            await answer.close()


async def serve(client: str, upstream_url: str, pat: str) -> None:
    make = {slug: CLIENTS[name] for name, slug in SLUGS.items() if name in CLIENTS}[client]
    upstream = make()
    app = tornado.web.Application(
        [(r"/v1/messages", Relay, {"upstream": upstream, "url": upstream_url + MESSAGES_PATH,
                                   "pat": pat})]
    )  # fmt: skip
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    # stdin closes when the benchmark ends or dies: stop then.
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stopped.set)), daemon=True
    ).start()
    await stopped.wait()
    server.stop()
    await upstream.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", required=True, choices=sorted(SLUGS.values()))
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--pat", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.client, args.upstream, args.pat))


if __name__ == "__main__":
    main()
