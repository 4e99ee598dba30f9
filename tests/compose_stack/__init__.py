"""The docker-compose stack run for real under a private Docker engine (issue 23)."""
