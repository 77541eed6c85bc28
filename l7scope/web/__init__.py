"""The agent's HTTP API (api.py) and, later, the web UI served next to it."""
