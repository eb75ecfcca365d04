#!/usr/bin/env bash
# Checks the deployment samples in this directory:
#
#   bash deploy/check.sh
#   FJELL_BIN=target/release/fjell bash deploy/check.sh   # also let fjell read the settings
#
# Every check runs where its tool is installed and prints "skipped (...)" otherwise: a
# missing tool never fails the script, and whatever a check finds does (exit code 1).
#
#   systemd/fjell.service  systemd-analyze verify
#   kubernetes/fjell.yaml  PyYAML: every document parses (no duplicate keys), has
#                          apiVersion, kind and metadata.name, and the objects fit together
#                          (selectors, volumes, probe ports, the Service and ConfigMap they
#                          name, replicas = required-contact-point-nr); kubectl apply
#                          --dry-run=client where kubectl has a cluster to ask (it needs one)
#   Dockerfile             docker build --check (with a reachable daemon and buildx),
#                          hadolint, and a static check that needs only python3
#   node.toml and the      TOML syntax (Python >= 3.11); with FJELL_BIN, fjell itself reads
#   ConfigMap's node.toml  the settings (with the manifest's FJELL_ variables)
#
# The script checks the files next to it, so a copy of this directory checks the copy.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
unit=$here/systemd/fjell.service
manifest=$here/kubernetes/fjell.yaml
dockerfile=$here/Dockerfile
settings=$here/node.toml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=0
skipped=0
ok() { printf 'ok       %s\n' "$*"; }
bad() {
    printf 'FAILED   %s\n' "$*"
    failed=1
}
skip() {
    printf 'skipped  %s\n' "$*"
    skipped=$((skipped + 1))
}
have() { command -v "$1" >/dev/null 2>&1; }
indent() { sed 's/^/         /'; }
first_line() { printf '%s' "${1%%$'\n'*}"; }

have_python=false
have python3 && have_python=true
have_yaml=false
$have_python && python3 -c 'import yaml' 2>/dev/null && have_yaml=true
have_tomllib=false
$have_python && python3 -c 'import tomllib' 2>/dev/null && have_tomllib=true

# ---------------------------------------------------------------------------------------
echo "== systemd/fjell.service"
if ! have systemd-analyze; then
    skip "systemd-analyze verify (no systemd-analyze)"
else
    mkdir "$tmp/systemd"
    # First a unit verify must accept, to learn whether verify works here at all (it can
    # fail for reasons of its own in some containers).
    printf '[Service]\nExecStart=/bin/true\n' >"$tmp/systemd/probe.service"
    if ! probe=$(systemd-analyze verify --man=no "$tmp/systemd/probe.service" 2>&1) ||
        [ -n "$probe" ]; then
        skip "systemd-analyze verify (it fails on a minimal unit here: $(first_line "$probe"))"
    else
        # verify fails when the ExecStart program is not installed on this machine, so it
        # reads a copy whose ExecStart runs /bin/true with the same arguments. It only warns
        # (exit code 0) about unknown sections, unknown keys and bad values, so any message
        # naming the unit fails the check too.
        copy=$tmp/systemd/fjell.service
        sed -E 's#^(ExecStart=[-@:+!|]*)[^[:space:]]+#\1/bin/true#' "$unit" >"$copy"
        if ! grep -q '^ExecStart=[-@:+!|]*/bin/true' "$copy"; then
            bad "systemd/fjell.service: no ExecStart= line"
        elif out=$(systemd-analyze verify --man=no "$copy" 2>&1) &&
            ! grep -q 'fjell\.service' <<<"$out"; then
            ok "systemd-analyze verify"
        else
            bad "systemd-analyze verify:"
            # The messages name the copy; its lines are the unit's lines.
            printf '%s\n' "${out//"$copy"/"$unit"}" | indent
        fi
    fi
fi

# ---------------------------------------------------------------------------------------
echo "== kubernetes/fjell.yaml"
# What the YAML check leaves for the settings checks: the ConfigMaps' *.toml files and the
# FJELL_ variables of each container (Kubernetes' $(VAR) references expanded with sample
# values for the downward API's fields).
mkdir "$tmp/k8s"
if ! $have_yaml; then
    skip "YAML documents ($($have_python && echo 'no PyYAML for python3' || echo 'no python3'))"
elif out=$(python3 - "$manifest" "$tmp/k8s" 2>&1 <<'PY'
import os, re, sys
import yaml

path, out = sys.argv[1], sys.argv[2]


class Strict(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; the API server refuses them."""


def mapping(loader, node, deep=False):
    seen = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", k.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)

try:
    with open(path) as f:
        docs = list(yaml.load_all(f, Loader=Strict))
except yaml.YAMLError as e:
    sys.exit(f"not valid YAML: {e}")

errors = []
objects = []
for i, d in enumerate(docs, 1):
    if d is None:  # an empty document, which kubectl skips too
        continue
    if not isinstance(d, dict):
        errors.append(f"document {i}: not a mapping")
        continue
    meta = d.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    for key, value in (("apiVersion", d.get("apiVersion")), ("kind", d.get("kind")),
                       ("metadata.name", name)):
        if not isinstance(value, str) or not value:
            errors.append(f"document {i}: no {key}")
    objects.append(d)
if not objects:
    errors.append("no documents")


def get(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def where(o):
    return f"{o.get('kind')} {get(o, 'metadata', 'name')}"


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


names = {(o.get("kind"), get(o, "metadata", "name")) for o in objects}
workloads = [o for o in objects
             if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")]
pod_labels = []
for w in workloads:
    labels = get(w, "spec", "template", "metadata", "labels") or {}
    pod_labels.append(labels)
    if not selects(get(w, "spec", "selector", "matchLabels"), labels):
        errors.append(f"{where(w)}: spec.selector.matchLabels do not match the pod labels")
    service = get(w, "spec", "serviceName")
    if w.get("kind") == "StatefulSet" and ("Service", service) not in names:
        errors.append(f"{where(w)}: serviceName {service!r} is no Service in this file")
    spec = get(w, "spec", "template", "spec") or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for v in volumes.values():
        cm = get(v, "configMap", "name")
        if cm is not None and ("ConfigMap", cm) not in names:
            errors.append(f"{where(w)}: volume {v.get('name')!r} names ConfigMap {cm!r}, "
                          "which is not in this file")
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        cname = f"{where(w)} container {c.get('name')!r}"
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                errors.append(f"{cname}: mounts unknown volume {m.get('name')!r}")
        ports = {p.get("name") for p in c.get("ports") or []}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = get(c, probe, "httpGet", "port")
            if isinstance(port, str) and port not in ports:
                errors.append(f"{cname}: {probe} uses unknown port name {port!r}")
        # The FJELL_ variables, as the container would see them.
        sample = {"status.podIP": "10.0.0.1", "metadata.namespace": "default",
                  "metadata.name": "fjell-0"}
        env = {}
        for e in c.get("env") or []:
            if "value" in e:
                value = re.sub(r"\$\((\w+)\)",
                               lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
            else:
                value = sample.get(get(e, "valueFrom", "fieldRef", "fieldPath"), "sample")
            env[e.get("name")] = value
        fjell = {k: v for k, v in env.items() if str(k).startswith("FJELL_")}
        if fjell:
            name = f"env-{w.get('kind')}@{get(w, 'metadata', 'name')}@{c.get('name')}"
            with open(os.path.join(out, name), "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in fjell.items())
for o in objects:
    if o.get("kind") == "Service":
        selector = get(o, "spec", "selector")
        if selector and not any(selects(selector, l) for l in pod_labels):
            errors.append(f"{where(o)}: its selector matches no pod template in this file")
    if o.get("kind") == "PodDisruptionBudget":
        selector = get(o, "spec", "selector", "matchLabels")
        if not any(selects(selector, l) for l in pod_labels):
            errors.append(f"{where(o)}: its selector matches no pod template in this file")
    if o.get("kind") == "ConfigMap":
        for key, text in (o.get("data") or {}).items():
            if key.endswith(".toml"):
                name = f"configmap-{get(o, 'metadata', 'name')}@{key}"
                with open(os.path.join(out, name), "w") as f:
                    f.write(text)

# A fleet started at once forms one cluster only if every node waits for all of them: the
# bootstrap's required-contact-point-nr must be the replicas of the workload using it.
try:
    import tomllib
except ImportError:
    tomllib = None
configmaps = {get(o, "metadata", "name"): o for o in objects if o.get("kind") == "ConfigMap"}
for w in workloads if tomllib else []:
    for v in get(w, "spec", "template", "spec", "volumes") or []:
        cm = configmaps.get(get(v, "configMap", "name"))
        for key, text in (get(cm, "data") or {}).items():
            try:
                required = get(tomllib.loads(text), "bootstrap", "required-contact-point-nr")
            except (tomllib.TOMLDecodeError, AttributeError):
                continue  # the settings checks report it
            replicas = get(w, "spec", "replicas")
            if required is not None and replicas is not None and required != replicas:
                errors.append(f"{where(w)}: replicas {replicas}, but ConfigMap "
                              f"{cm['metadata']['name']} {key} has required-contact-point-nr "
                              f"{required}: a fleet started at once can form two clusters "
                              "or none")

if errors:
    sys.exit("\n".join(errors))
print(f"{len(objects)} documents: "
      + ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objects))
PY
); then
    ok "YAML documents: $out"
else
    bad "YAML documents:"
    printf '%s\n' "$out" | indent
fi

if ! have kubectl; then
    skip "kubectl apply --dry-run=client (no kubectl)"
else
    # Client-side dry runs still ask a server which kinds exist; without one (no kubeconfig,
    # or one whose cluster cannot be reached) kubectl fails on any manifest. A trivial
    # ConfigMap tells which case this is.
    dry_run() {
        timeout 30 kubectl apply --dry-run=client --validate=false --request-timeout=5s -f "$1" 2>&1
    }
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n' >"$tmp/k8s/probe.yaml"
    if ! dry_run "$tmp/k8s/probe.yaml" >/dev/null; then
        skip "kubectl apply --dry-run=client (kubectl needs a cluster to ask, and none answers)"
    elif out=$(dry_run "$manifest"); then
        ok "kubectl apply --dry-run=client"
    else
        bad "kubectl apply --dry-run=client:"
        printf '%s\n' "$out" | indent
    fi
fi

# ---------------------------------------------------------------------------------------
echo "== Dockerfile"
if ! have docker; then
    skip "docker build --check (no docker)"
elif ! docker info >/dev/null 2>&1; then
    skip "docker build --check (no reachable docker daemon)"
elif ! docker buildx version >/dev/null 2>&1; then
    skip "docker build --check (no docker buildx)"
elif out=$(docker build --check -f "$dockerfile" "$root" 2>&1); then
    ok "docker build --check"
else
    bad "docker build --check:"
    printf '%s\n' "$out" | indent
fi

if ! have hadolint; then
    skip "hadolint (no hadolint)"
elif out=$(hadolint --failure-threshold error "$dockerfile" 2>&1); then
    ok "hadolint${out:+ (warnings: $(wc -l <<<"$out"))}"
else
    bad "hadolint:"
    printf '%s\n' "$out" | indent
fi

# Without docker: the instructions are known ones, FROM comes first (after ARGs), the last
# stage has an ENTRYPOINT whose exec form is valid JSON, EXPOSE names port/protocol, and
# the files COPY takes from the context exist.
if ! $have_python; then
    skip "Dockerfile static check (no python3)"
elif out=$(python3 - "$dockerfile" "$root" 2>&1 <<'PY'
import glob, json, os, re, shlex, sys

path, root = sys.argv[1], sys.argv[2]
KNOWN = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
         "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
         "HEALTHCHECK", "SHELL"}
errors = []
instructions = []  # (line number, keyword, arguments)
lines = open(path).read().splitlines()
if any(re.match(r"#\s*escape\s*=", l) for l in lines[:5]):
    sys.exit("an escape directive: this check reads only the default escape character")
current, start, heredoc = "", 0, None
for n, line in enumerate(lines, 1):
    s = line.strip()
    if heredoc:  # a here-document's body is not instructions
        if s == heredoc:
            heredoc = None
        continue
    if s.startswith("#") or (not current and not s):
        continue
    if not current:
        start = n
    if s.endswith("\\"):
        current += s[:-1] + " "
        continue
    current += s
    keyword, _, args = current.partition(" ")
    instructions.append((start, keyword.upper(), args.strip()))
    m = re.search(r"<<-?[\"']?(\w+)[\"']?", current)
    if m and keyword.upper() in ("RUN", "COPY", "ADD"):
        heredoc = m.group(1)
    current = ""
if current:
    errors.append(f"line {start}: the file ends inside a continued line")

for n, keyword, _ in instructions:
    if keyword not in KNOWN:
        errors.append(f"line {n}: unknown instruction {keyword}")
leading = [k for _, k, _ in instructions if k != "ARG"]
if not leading or leading[0] != "FROM":
    errors.append("the first instruction (after ARGs) is not FROM")
last_from = max((i for i, (_, k, _) in enumerate(instructions) if k == "FROM"), default=-1)
entrypoints = [(n, a) for n, k, a in instructions[last_from + 1:] if k == "ENTRYPOINT"]
if not entrypoints:
    errors.append("no ENTRYPOINT in the final stage")
for n, args in entrypoints:
    if args.startswith("["):
        try:
            value = json.loads(args)
            if not (isinstance(value, list) and value and all(isinstance(x, str) for x in value)):
                raise ValueError
        except ValueError:
            errors.append(f"line {n}: ENTRYPOINT is not a JSON array of strings: {args}")
for n, keyword, args in instructions:
    if keyword == "EXPOSE":
        for port in args.split():
            if not re.fullmatch(r"\d+(-\d+)?(/(tcp|udp|sctp))?|\$\{?\w+\}?", port):
                errors.append(f"line {n}: EXPOSE {port}: not PORT[/PROTOCOL]")
    if keyword in ("COPY", "ADD"):
        try:
            words = json.loads(args) if args.startswith("[") else shlex.split(args)
        except ValueError as e:
            errors.append(f"line {n}: {keyword} {args}: {e}")
            continue
        if any(w.startswith("--from") for w in words) or "<<" in args:
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        if not sources:
            errors.append(f"line {n}: {keyword} needs a source and a destination")
        for src in sources:
            if "://" in src or "$" in src:
                continue
            if not glob.glob(os.path.join(root, src)):
                errors.append(f"line {n}: {keyword} {src}: not in the build context {root}")
if errors:
    sys.exit("\n".join(errors))
print(f"{len(instructions)} instructions")
PY
); then
    ok "Dockerfile static check: $out"
else
    bad "Dockerfile static check:"
    printf '%s\n' "$out" | indent
fi

# ---------------------------------------------------------------------------------------
echo "== settings (node.toml)"
files=("$settings")
for f in "$tmp"/k8s/configmap-*; do
    [ -e "$f" ] && files+=("$f")
done
if ! $have_yaml; then
    skip "settings in kubernetes/fjell.yaml's ConfigMap (read out with PyYAML, missing)"
fi
label() {
    case $1 in
    "$settings") echo "node.toml" ;;
    *)
        local cm=${1##*/configmap-}
        echo "kubernetes/fjell.yaml, ConfigMap ${cm%%@*}, ${cm#*@}"
        ;;
    esac
}

if ! $have_tomllib; then
    skip "TOML syntax ($($have_python && echo 'no tomllib: Python < 3.11' || echo 'no python3'))"
else
    for f in "${files[@]}"; do
        if out=$(python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' \
            "$f" 2>&1); then
            ok "TOML syntax: $(label "$f")"
        else
            bad "TOML syntax: $(label "$f"):"
            printf '%s\n' "$(tail -n 1 <<<"$out")" | indent
        fi
    done
fi

# fjell has no command that only checks settings, so the check runs `fjell run` and reads
# how it ends. It first reads the settings file and the FJELL_ variables, and exits with
# code 2 naming the key if any is invalid. Then it builds the node, and the last thing that
# can fail before it binds a socket is loading the TLS files. The check points tls.ca,
# tls.cert and tls.key (by FJELL_TLS__* variables) at files that do not exist: a run that
# ends with exit code 1, "cannot start" and the name of one of those files accepted
# everything before them, and no node ever really starts on this machine. Anything else
# fails the check: exit code 2 (invalid settings), another start error (an unusable
# combination of settings), or no verdict within 3 s. The environment is emptied first, so
# FJELL_ variables of the caller's shell cannot change the verdict.
if [ -z "${FJELL_BIN:-}" ]; then
    skip "settings read by fjell (set FJELL_BIN to a built fjell binary)"
elif ! bin=$(command -v "$FJELL_BIN"); then
    bad "settings read by fjell: FJELL_BIN=$FJELL_BIN is not an executable"
else
    case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
    fjell_reads() { # FILE LABEL [NAME=VALUE...]
        local file=$1 what=$2 dir rc
        shift 2
        dir=$(mktemp -d "$tmp/run.XXXXXX")
        rc=0
        (cd "$dir" && env -i PATH="$PATH" HOME="$dir" "$@" \
            FJELL_TLS__CA="$dir/absent-ca.pem" \
            FJELL_TLS__CERT="$dir/absent-node.pem" \
            FJELL_TLS__KEY="$dir/absent-node.key" \
            timeout 3 "$bin" run --config "$file") >"$dir/out" 2>&1 || rc=$?
        if [ "$rc" -eq 1 ] && grep -q 'cannot start' "$dir/out" &&
            grep -q "$dir/absent-" "$dir/out" && ! grep -q 'invalid setting' "$dir/out"; then
            ok "settings read by fjell: $what"
        else
            case $rc in
            2) bad "settings read by fjell: $what: invalid (exit code 2):" ;;
            124) bad "settings read by fjell: $what: no verdict within 3 s:" ;;
            *) bad "settings read by fjell: $what: exit code $rc, not the expected TLS error:" ;;
            esac
            indent <"$dir/out"
        fi
    }
    for f in "${files[@]}"; do
        if [ "$f" = "$settings" ]; then
            fjell_reads "$f" "$(label "$f")"
            continue
        fi
        # A ConfigMap's file, with the variables of each container that sets FJELL_ ones.
        envs=("$tmp"/k8s/env-*)
        if [ ! -e "${envs[0]}" ]; then
            fjell_reads "$f" "$(label "$f")"
            continue
        fi
        for e in "${envs[@]}"; do
            mapfile -t vars <"$e"
            IFS=@ read -r kind name container <<<"${e##*/env-}"
            fjell_reads "$f" "$(label "$f"), with the FJELL_ variables of $kind $name, container $container" "${vars[@]}"
        done
    done
fi

# ---------------------------------------------------------------------------------------
echo
if [ "$failed" -ne 0 ]; then
    echo "check.sh: FAILED"
    exit 1
fi
echo "check.sh: every check that could run passed ($skipped skipped)"
