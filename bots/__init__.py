"""Channel adapters, the aiohttp server, the CLI and the composition root."""
