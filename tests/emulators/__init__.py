"""Small aiohttp servers on loopback that speak remote platforms' real wire formats."""
