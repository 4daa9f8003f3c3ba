#!/usr/bin/env bash
# One entry point that sets everything up, then runs what you asked for:
#   bash scripts/dev.sh demo [demo options]   the demo on a local Kafka + Schema Registry
#   bash scripts/dev.sh test                  the whole test suite (unit + integration on a real stack + lessons)
#   bash scripts/dev.sh lab                   JupyterLab on the lessons, with the local stack
# Set-up is idempotent: Debian libraries for the Kafka client, Java + Maven, npm ci, build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else echo "need root for: $*" >&2; exit 1; fi; }

# librdkafka is built from source by @confluentinc/kafka-javascript: it needs these headers.
debs=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev libcurl4-openssl-dev)
# Redis for foreachBatch's key-value store (`sluice up --with redis`, the Redis tests and lesson 08).
debs+=(redis-server)
# The browser test of the live monitor drives Debian's chromium with puppeteer-core (no bundled download).
debs+=(chromium)
command -v java >/dev/null || debs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || debs+=(maven)
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install (building librdkafka takes ~2 minutes).
stamp=node_modules/.sluice-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  say "npm ci (builds librdkafka from source: the prebuilt download is not reachable here)"
  CKJS_LINKING=dynamic npm ci --no-audit --no-fund
  touch "$stamp"
fi
# Lessons import 'sluice' like any user code: the package links to itself in node_modules.
ln -sfn .. node_modules/sluice

# The lessons run in Jupyter with the tslab TypeScript kernel (Deno's kernel cannot load the Kafka client's
# native addon: docs/decisions.md). Jupyter's runner and renderer come from PyPI.
pystamp=node_modules/.sluice-python
if [ ! -f "$pystamp" ] || [ lessons/requirements.txt -nt "$pystamp" ]; then
  say "Installing the lesson runner (nbclient, nbconvert, jupytext) from PyPI"
  python3 -m pip install -q --disable-pip-version-check -r lessons/requirements.txt
  touch "$pystamp"
fi
# The Spark Connect backend's tests and lesson 13 run Apache Spark 3.5 from PyPI (pyspark carries Spark's jars and
# spark-submit); its Kafka/Avro/Connect jars come from Maven Central on the server's first start (src/stack/spark.ts).
if ! python3 -c 'import pyspark, sys; sys.exit(0 if pyspark.__version__.startswith("3.5.") else 1)' 2>/dev/null; then
  say "Installing pyspark 3.5.9 from PyPI (Spark for the Spark Connect tests; about 320 MB)"
  python3 -m pip install -q --disable-pip-version-check pyspark==3.5.9
fi
command -v javac >/dev/null || { say "Installing a JDK (javac builds the loopback Spark Connect launcher)"; as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null; }
scope=(); [ "$(id -u)" = 0 ] || scope=(--user)
node_modules/.bin/tslab install --python=python3 --binary="$PWD/node_modules/.bin/tslab" "${scope[@]}" >/dev/null

say "Building"
npm run build --silent

cmd="${1:-}"
shift || true
case "$cmd" in
  demo) exec node bin/sluice.js demo "$@" ;;
  lab)
    python3 -m pip install -q --disable-pip-version-check jupyterlab
    node bin/sluice.js up
    exec python3 -m jupyterlab --ip 127.0.0.1 --notebook-dir lessons "$@" ;;
  test) exec npm test --silent -- "$@" ;;
  "") say "Set-up done. Next: bash scripts/dev.sh demo | bash scripts/dev.sh test" ;;
  *) exec node bin/sluice.js "$cmd" "$@" ;;
esac
