#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine (none here, none in CI).
#  1. `docker compose config -q` when the compose plugin is installed (it needs no engine);
#  2. always, a structural check in Python (PyYAML): top-level and service keys, image or build,
#     depends_on targets and conditions, healthchecks, ports, named volumes, duplicate keys, and
#     that hub services (those built from our Dockerfile) run an existing services/*.ts file and
#     take only variables the code parses: shared/config.ts baseEnv, or the service's own
#     services/<name>/env.ts. The shared x-hub-env block may hold baseEnv variables only.
# Usage: deploy/compose-check.sh [--json] [FILE]   (--json: print the parsed document, merge
# keys resolved, and exit). Exit 0 when well-formed, 1 with problems listed, 2 when no tool.
set -uo pipefail
source "$(dirname "$0")/local/env.sh"
ROOT="$(cd "$LOCAL_DIR/../.." && pwd)"
json=0
file="$ROOT/docker-compose.yml"
for arg in "$@"; do
  case $arg in
    --json) json=1 ;;
    *) file=$arg ;;
  esac
done
[ -f "$file" ] || { echo "compose-check: $file not found" >&2; exit 1; }

say() { [ "$json" = 1 ] || echo "compose-check: $*" >&2; }

if [ "$json" = 0 ]; then
  if docker compose version >/dev/null 2>&1; then
    say "docker compose config -q"
    docker compose -f "$file" config -q || exit 1
  else
    say "docker compose plugin not installed; structural check in Python only"
  fi
fi

# A Python with PyYAML: the system one, else the project's venv (PyYAML installed there on demand).
python=""
if python3 -c 'import yaml' 2>/dev/null; then
  python=python3
elif [ -x "$IONFLUX_VENV/bin/python" ] && "$IONFLUX_VENV/bin/python" -c 'import yaml' 2>/dev/null; then
  python="$IONFLUX_VENV/bin/python"
else
  say "installing PyYAML into $IONFLUX_VENV"
  { [ -x "$IONFLUX_VENV/bin/python" ] || python3 -m venv "$IONFLUX_VENV"; } >&2 &&
    "$IONFLUX_VENV/bin/pip" install -q pyyaml >&2 && python="$IONFLUX_VENV/bin/python"
fi
[ -n "$python" ] || { echo "compose-check: no Python with PyYAML available" >&2; exit 2; }

"$python" - "$file" "$ROOT" "$json" <<'PY'
import json, os, re, sys
import yaml

path, root, as_json = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
problems = []

class Loader(yaml.SafeLoader):
    """SafeLoader (merge keys included) that refuses duplicate keys, as compose does."""

def construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            problems.append(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)

try:
    with open(path) as f:
        doc = yaml.load(f, Loader=Loader)
except yaml.YAMLError as e:
    print(f"compose-check: {path} does not parse: {e}", file=sys.stderr)
    sys.exit(1)

if as_json:
    json.dump(doc, sys.stdout, indent=2)
    print()
    sys.exit(0)

def problem(msg):
    problems.append(msg)

TOP = {"version", "name", "services", "networks", "volumes", "secrets", "configs", "include"}
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "depends_on", "healthcheck", "restart", "volumes", "networks", "init", "user", "working_dir",
    "stop_grace_period", "stop_signal", "cap_add", "cap_drop", "container_name", "hostname",
    "labels", "logging", "deploy", "ulimits", "tmpfs", "read_only", "security_opt", "profiles",
    "extra_hosts", "mem_limit", "cpus", "secrets", "configs", "platform", "pull_policy",
    "shm_size", "sysctls", "privileged", "tty", "stdin_open", "dns", "develop", "network_mode",
}
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = {"no", "always", "on-failure", "unless-stopped"}
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PORT = re.compile(r"^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(/(tcp|udp))?$")

def is_scalar(v):
    return v is None or isinstance(v, (str, int, float, bool))

def env_keys(svc, name):
    env = svc.get("environment")
    if env is None:
        return {}
    if isinstance(env, list):
        out = {}
        for item in env:
            if not isinstance(item, str):
                problem(f"services.{name}.environment: list items must be KEY=VALUE strings")
                continue
            k, _, v = item.partition("=")
            out[k] = v
        return out
    if isinstance(env, dict):
        for k, v in env.items():
            if not is_scalar(v):
                problem(f"services.{name}.environment.{k}: value must be a string, number, boolean or null")
        return env
    problem(f"services.{name}.environment must be a mapping or a list")
    return {}

ZOD_KEY = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s*:", re.M)

def base_env_names():
    src = open(os.path.join(root, "shared", "config.ts")).read()
    m = re.search(r"export const baseEnv = z\.object\(\{(.*?)\n\}\);", src, re.S)
    if not m:
        problem("shared/config.ts: cannot find `export const baseEnv = z.object({...});`")
        return set()
    return set(ZOD_KEY.findall(m.group(1)))

def service_env_names(service_dir):
    f = os.path.join(root, service_dir, "env.ts")
    if not os.path.isfile(f):
        return set()
    src = open(f).read()
    names = set(ZOD_KEY.findall(src))
    # Shapes spread into the schema (`...llmEnvShape`) come from the file they are imported from.
    for spread in re.findall(r"\.\.\.(\w+)", src):
        m = re.search(r"import\s*\{[^}]*\b" + spread + r"\b[^}]*\}\s*from\s*'([^']+)'", src)
        if m:
            shape = os.path.normpath(os.path.join(os.path.dirname(f), m.group(1)))
            body = re.search(r"export const " + spread + r" = \{(.*?)\n\}", open(shape).read(), re.S) if os.path.isfile(shape) else None
            names |= set(ZOD_KEY.findall(body.group(1))) if body else set()
    return names

def dockerfile_entrypoint(context, dockerfile):
    f = os.path.join(root, context, dockerfile)
    if not os.path.isfile(f):
        return None
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", open(f).read(), re.M)
    return json.loads(m.group(1)) if m else None

if not isinstance(doc, dict):
    print("compose-check: the document is not a mapping", file=sys.stderr)
    sys.exit(1)
for k in doc:
    if k not in TOP and not str(k).startswith("x-"):
        problem(f"unknown top-level key {k!r}")
services = doc.get("services")
if not isinstance(services, dict) or not services:
    problem("no services")
    services = {}
volumes = doc.get("volumes") or {}
base = base_env_names()
hub_env = doc.get("x-hub-env")
if isinstance(hub_env, dict):
    for k in hub_env:
        if k not in base:
            problem(f"x-hub-env.{k}: not a variable of shared/config.ts baseEnv")
hub = []

for name, svc in services.items():
    where = f"services.{name}"
    if not isinstance(svc, dict):
        problem(f"{where} must be a mapping")
        continue
    for k in svc:
        if k not in SERVICE_KEYS and not str(k).startswith("x-"):
            problem(f"{where}: unknown key {k!r}")
    if "image" not in svc and "build" not in svc:
        problem(f"{where}: needs image or build")
    if "restart" in svc and not (svc["restart"] in RESTART or re.match(r"^on-failure:\d+$", str(svc["restart"]))):
        problem(f"{where}.restart: {svc['restart']!r} is not a restart policy")
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        deps = {d: {"condition": "service_started"} for d in deps}
    if not isinstance(deps, dict):
        problem(f"{where}.depends_on must be a list or a mapping")
        deps = {}
    for dep, spec in deps.items():
        if dep not in services:
            problem(f"{where}.depends_on: no service {dep!r}")
            continue
        if dep == name:
            problem(f"{where} depends on itself")
        cond = (spec or {}).get("condition", "service_started") if isinstance(spec, dict) else None
        if cond not in CONDITIONS:
            problem(f"{where}.depends_on.{dep}: condition {cond!r} is not one of {sorted(CONDITIONS)}")
        elif cond == "service_healthy" and not (isinstance(services[dep], dict) and "healthcheck" in services[dep]):
            problem(f"{where}.depends_on.{dep}: service_healthy, but {dep} has no healthcheck")
    hc = svc.get("healthcheck")
    if hc is not None:
        if not isinstance(hc, dict):
            problem(f"{where}.healthcheck must be a mapping")
        else:
            for k in hc:
                if k not in HEALTH_KEYS:
                    problem(f"{where}.healthcheck: unknown key {k!r}")
            test = hc.get("test")
            if isinstance(test, list):
                if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE") or (test[0] != "NONE" and len(test) < 2):
                    problem(f"{where}.healthcheck.test: a list must start with CMD, CMD-SHELL or NONE and name a command")
            elif not isinstance(test, str) and not hc.get("disable"):
                problem(f"{where}.healthcheck.test must be a string or a list")
            for k in ("interval", "timeout", "start_period", "start_interval"):
                if k in hc and not DURATION.match(str(hc[k])):
                    problem(f"{where}.healthcheck.{k}: {hc[k]!r} is not a duration like 10s")
            if "retries" in hc and not (isinstance(hc["retries"], int) and hc["retries"] >= 0):
                problem(f"{where}.healthcheck.retries must be a non-negative integer")
    for p in svc.get("ports") or []:
        if isinstance(p, int) or isinstance(p, dict):
            continue
        if not isinstance(p, str) or not PORT.match(p):
            problem(f"{where}.ports: {p!r} is not [ip:]host:container[/proto]")
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            src = v.split(":")[0]
            if ":" in v and not src.startswith((".", "/", "~", "$")) and src not in volumes:
                problem(f"{where}.volumes: named volume {src!r} is not declared under top-level volumes")
    env = env_keys(svc, name)
    for k in env:
        if not ENV_NAME.match(str(k)):
            problem(f"{where}.environment: {k!r} is not a valid variable name")
    if "stop_grace_period" in svc and not DURATION.match(str(svc["stop_grace_period"])):
        problem(f"{where}.stop_grace_period: {svc['stop_grace_period']!r} is not a duration")

    build = svc.get("build")
    if build is None:
        continue
    # A hub service: built from our Dockerfile, runs one of our services, reads our variables.
    hub.append(name)
    context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
    entrypoint = dockerfile_entrypoint(context, dockerfile)
    if entrypoint is None:
        problem(f"{where}.build: {os.path.join(context, dockerfile)} missing or has no ENTRYPOINT [...]")
    command = svc.get("command")
    command = command.split() if isinstance(command, str) else command
    if not isinstance(command, list) or not command:
        problem(f"{where}: a hub service needs a command (its main .ts file)")
        continue
    if entrypoint and entrypoint[0] == "node" and command[0] == "node":
        problem(f"{where}.command starts with node, but the image's ENTRYPOINT is already {entrypoint}: give the .ts file only")
    main = next((c for c in command if str(c).endswith(".ts")), None)
    if not main or not os.path.isfile(os.path.join(root, main)):
        problem(f"{where}.command: no existing .ts file in {command}")
        continue
    allowed = base | service_env_names(os.path.dirname(main))
    for k in env:
        if k not in allowed:
            problem(f"{where}.environment.{k}: not parsed by shared/config.ts baseEnv nor {os.path.dirname(main)}/env.ts")
    for k, v in env.items():
        if k in ("KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "VAULT_ADDR") and isinstance(v, str):
            for part in v.split(","):
                host = re.sub(r"^[a-z]+://", "", part.strip()).split("/")[0].split(":")[0]
                if host and host not in services and host not in ("localhost", "127.0.0.1") and "$" not in host:
                    problem(f"{where}.environment.{k}: host {host!r} is not a service of this file")
    for dep in ("kafka", "schema-registry", "vault"):
        if dep in services and deps.get(dep, {}).get("condition") != "service_healthy":
            problem(f"{where}: should wait for {dep} with condition service_healthy")

if problems:
    print(f"compose-check: {path}: {len(problems)} problem(s)", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    sys.exit(1)
print(f"compose-check: {os.path.basename(path)} OK: {len(services)} services ({', '.join(services)}); hub services: {', '.join(hub) or 'none'}", file=sys.stderr)
PY
