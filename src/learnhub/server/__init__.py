"""The RESP door onto the hub: a sans-IO codec (resp), the command table (commands), and a
thin asyncio loop (app)."""
