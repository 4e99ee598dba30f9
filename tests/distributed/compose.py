"""Reading docker-compose.yml without Docker: interpolation, schema validation, cross-references."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import click
import jsonschema
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\})")


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def compose_schema() -> dict[str, Any]:
    """The compose-spec schema check-jsonschema vendors (--builtin-schema vendor.compose-spec)."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema_file.read_text(encoding="utf-8"))


def schema_errors(doc: Any) -> list[str]:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and $$ substitution, applied to every string."""
    if isinstance(value, str):

        def replace(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group("name"), m.group("default")
            found = env.get(name)
            if found in (None, "") and default is not None:
                return default
            return found or ""

        return _VARIABLE.sub(replace, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def command_argv(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return list(command) if isinstance(command, list) else command.split()


def resolve_command(cli: click.Group, args: list[str]) -> click.Command | None:
    """The click command that ``bplab *args`` runs, or None if there is no such subcommand."""
    command: click.Command = cli
    for arg in args:
        if arg.startswith("-"):
            break
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), arg)  # lazy groups import it here
        if sub is None:
            return None
        command = sub
    return None if command is cli else command


def cross_reference_errors(doc: Mapping[str, Any], cli: click.Group) -> list[str]:
    """What the schema cannot see: names that must point somewhere, and bplab's own rules."""
    errors: list[str] = []
    services: Mapping[str, Any] = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    images_built = {s.get("image") for s in services.values() if "build" in s}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for dep in depends if isinstance(depends, (list, dict)) else []:
            if dep not in services:
                errors.append(f"{name}: depends_on names no service: {dep!r}")
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source")
            if source and not source.startswith((".", "/", "~")) and source not in volumes:
                errors.append(f"{name}: volume {source!r} is not declared under volumes:")
        image = service.get("image", "")
        if image.startswith("bplab") and image not in images_built:
            errors.append(f"{name}: image {image!r} is built by no service")
        argv = command_argv(service)
        if argv[:1] == ["bplab"] and resolve_command(cli, argv[1:]) is None:
            errors.append(f"{name}: `{' '.join(argv)}` is not a bplab command")
        for port in service.get("ports") or []:
            if not _bound_to_loopback(port):
                errors.append(f"{name}: port {port!r} is published beyond 127.0.0.1")
    return errors


def bplab_rules_errors(doc: Mapping[str, Any]) -> list[str]:
    """What issue 6 asks of the stack, beyond well-formedness."""
    services: Mapping[str, Any] = doc.get("services") or {}
    errors: list[str] = []
    for required in ("redis", "postgres", "migrate", "worker", "flower"):
        if required not in services:
            errors.append(f"no {required!r} service")
    if errors:
        return errors
    redis, postgres = services["redis"], services["postgres"]
    if "healthcheck" not in redis:
        errors.append("redis has no healthcheck")
    if "--appendonly" not in command_argv(redis):
        errors.append("redis runs without appendonly persistence")
    if "pg_isready" not in " ".join(postgres.get("healthcheck", {}).get("test", [])):
        errors.append("postgres healthcheck does not use pg_isready")
    if not any(
        str(v).split(":")[0] in (doc.get("volumes") or {}) for v in postgres.get("volumes", [])
    ):
        errors.append("postgres data is not on a named volume")
    if command_argv(services["migrate"])[:3] != ["bplab", "db", "upgrade"]:
        errors.append("migrate does not run `bplab db upgrade`")
    wanted = {
        "redis": "service_healthy",
        "postgres": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    depends = services["worker"].get("depends_on") or {}
    for dep, condition in wanted.items():
        got = depends.get(dep, {}).get("condition") if isinstance(depends, dict) else None
        if got != condition:
            errors.append(f"worker depends on {dep} with condition {got!r}, wanted {condition!r}")
    if "container_name" in services["worker"]:
        errors.append("worker has a container_name: it could not be scaled")
    if "monitoring" not in (services["flower"].get("profiles") or []):
        errors.append("flower is not behind a profile")
    return errors


def _bound_to_loopback(port: Any) -> bool:
    if isinstance(port, dict):
        return port.get("host_ip") in ("127.0.0.1", "::1")
    parts = str(port).split(":")
    # "HOST_PORT:CONTAINER_PORT" or a bare port publishes on every interface.
    return len(parts) >= 3 and parts[0] in ("127.0.0.1", "[::1]")
