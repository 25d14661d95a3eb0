#!/usr/bin/env bash
# An Elasticsearch image for the testcontainers path of the test fixtures (tests/esnode.py),
# on machines where no registry serves Elastic's image: Debian trixie with its Java 21
# runtime, plus the same integ-test distribution the dev node runs (devtools/devnode.py,
# fetched from Maven Central once and cached). Made with mmdebstrap and `podman import`, no
# build step; the root filesystem tarball is cached next to the distribution.
#
# Like the official image, it takes settings from environment variables whose names hold
# dots (`discovery.type=single-node`), which is how testcontainers configures it.
#
# Prints the image reference last; the tag carries the version, as testcontainers expects.
set -euo pipefail
shopt -s inherit_errexit
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

read -r version es_home cache_root < <("$python" -c '
from devtools.devnode import ES_VERSION, cache_dir, ensure_distribution
print(ES_VERSION, ensure_distribution(), cache_dir())')
ref=localhost/appmixer-audit-es:${version}
if podman image exists "$ref"; then echo "$ref"; exit 0; fi

tarball=$cache_root/images/elasticsearch-${version}-trixie.tar
mkdir -p "$cache_root/images"
entrypoint=$(mktemp)
trap 'rm -f "$entrypoint"' EXIT
cat >"$entrypoint" <<'EOF'
#!/bin/bash
# Settings from the environment, as Elastic's image takes them: NAME.WITH.DOTS=value -> -E.
set -euo pipefail
args=()
while IFS='=' read -r -d '' name value; do
    if [[ "$name" =~ ^[a-z0-9_]+(\.[a-z0-9_]+)+$ ]]; then args+=(-E "$name=$value"); fi
done < <(env -0)
ES_JAVA_HOME=$(dirname "$(dirname "$(readlink -f /usr/bin/java)")")
export ES_JAVA_HOME
exec /usr/share/elasticsearch/bin/elasticsearch "${args[@]}" "$@"
EOF
(
    flock 9
    if [[ ! -s "$tarball" ]]; then
        echo "es-image: making Debian trixie with openjdk-21-jre-headless and Elasticsearch ${version} (once)" >&2
        mmdebstrap --quiet --format=tar --variant=apt --include=openjdk-21-jre-headless,ca-certificates \
            --customize-hook="copy-in $es_home /usr/share" \
            --customize-hook="mv \"\$1/usr/share/$(basename "$es_home")\" \"\$1/usr/share/elasticsearch\"" \
            --customize-hook="upload $entrypoint /usr/local/bin/docker-entrypoint" \
            --customize-hook='chmod 0755 "$1/usr/local/bin/docker-entrypoint"' \
            --customize-hook='echo "elasticsearch:x:1000:1000::/usr/share/elasticsearch:/bin/bash" >> "$1/etc/passwd"' \
            --customize-hook='echo "elasticsearch:x:1000:" >> "$1/etc/group"' \
            --customize-hook='mkdir -p "$1/usr/share/elasticsearch/data" "$1/usr/share/elasticsearch/logs"' \
            --customize-hook='chown -R 1000:1000 "$1/usr/share/elasticsearch"' \
            trixie "$tarball.part" >&2
        mv "$tarball.part" "$tarball"
    fi
) 9>"$cache_root/images/.lock"

podman import --quiet \
    --change 'USER=1000:1000' \
    --change 'WORKDIR=/usr/share/elasticsearch' \
    --change 'ENV=PATH=/usr/share/elasticsearch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'EXPOSE=9200' \
    --change 'EXPOSE=9300' \
    --change 'ENTRYPOINT=["/usr/local/bin/docker-entrypoint"]' \
    "$tarball" "$ref" >/dev/null
echo "$ref"
