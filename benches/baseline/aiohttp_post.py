#!/usr/bin/env python3
"""Baseline for BENCHMARKS.md target 3: Python aiohttp doing the same posts as bare_reqwest.

Usage: aiohttp_post.py URL N CONCURRENCY BODY_FILE
Prints one line: `aiohttp N posts in S s: R msg/s (E errors)`.
"""
import asyncio
import sys
import time

import aiohttp


async def main(url, n, concurrency, body):
    headers = {
        "Authorization": "Bearer bench",
        "Intercom-Version": "2.16",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    counter = iter(range(n))
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker():
            nonlocal errors
            for _ in counter:
                try:
                    async with session.post(url, data=body) as resp:
                        await resp.read()
                        if resp.status >= 300:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        secs = time.perf_counter() - start
    print(f"aiohttp {n} posts in {secs:.3f} s: {n / secs:.1f} msg/s ({errors} errors)")


if __name__ == "__main__":
    url, n, conc, body_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(body_file, "rb") as f:
        body = f.read()
    asyncio.run(main(url, n, conc, body))
