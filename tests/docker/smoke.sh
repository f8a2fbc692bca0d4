#!/usr/bin/env bash
# Docker smoke test: build the project image and run a tiny study inside it, then check that the
# results file lands on the host through a bind mount.
#
# Opt-in (it takes several minutes and needs root for dockerd/debootstrap on a bare machine):
#   RUN_DOCKER_SMOKE=1 bash tests/docker/smoke.sh
#
# Works on machines that cannot pull from a registry: if `python:3.11-slim` is neither present
# nor pullable, a stand-in with that tag is made from `debootstrap --variant=minbase bookworm`
# plus Debian's python3.11. If no Docker daemon answers, one is started here (and stopped again on
# exit). The CPU torch wheel is served from a local folder on 127.0.0.1 and passed to the build
# through the Dockerfile's TORCH_INDEX_URL argument. See tests/docker/README.md.
#
# Environment knobs (all optional):
#   SMOKE_WORK_DIR        scratch folder, kept between runs as a cache
#                         (default /var/tmp/transfer_rl_docker_smoke)
#   TORCH_VERSION         torch version to install in the image (default 2.13.0)
#   TORCH_INDEX_URL       use this torch index instead of a local wheel folder
#                         (e.g. https://download.pytorch.org/whl/cpu)
#   TORCH_WHEEL           path to a torch wheel to serve (default: `pip download` one)
#   IMAGE_TAG             tag of the project image (default transfer_rl:smoke)
#   DEBIAN_MIRROR         mirror for debootstrap (default http://deb.debian.org/debian)
#   PYTHON                host python used for pip/http.server/unpickling (default python3)
set -euo pipefail

if [[ "${RUN_DOCKER_SMOKE:-0}" != "1" ]]; then
    echo "docker smoke test skipped: set RUN_DOCKER_SMOKE=1 to run it (see tests/docker/README.md)"
    exit 0
fi

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${SMOKE_WORK_DIR:-/var/tmp/transfer_rl_docker_smoke}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
IMAGE_TAG="${IMAGE_TAG:-transfer_rl:smoke}"
# The base image the Dockerfile names (a patch-level tag), so a stand-in gets that very tag.
BASE_TAG="$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "${REPO_ROOT}/Dockerfile" | head -n 1)"
[[ -n "${BASE_TAG}" ]] || { echo "no FROM line in ${REPO_ROOT}/Dockerfile" >&2; exit 1; }
MINBASE_TAG="transfer_rl-smoke/bookworm-minbase:latest"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON:-python3}"
SAVE_NAME="docker_smoke"
RUN_AS="${SMOKE_UID:-1000}:${SMOKE_GID:-1000}"
STUDY_ARGS=(--save_name="${SAVE_NAME}" --leg_length=30 --initial_model=leg_34_trained
    --total_frames=2000 --batch_size=1000 --minibatch_size=250 --train_steps=4 --num_envs=1)

mkdir -p "${WORK}"
log() { printf '\n[smoke %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '\n[smoke] FAILED: %s\n' "$*" >&2; exit 1; }

# --- cleanup: only what this script started, by pid --------------------------------------------
DOCKERD_PID=""
HTTP_PID=""
cleanup() {
    if [[ -n "${HTTP_PID}" ]]; then kill "${HTTP_PID}" 2>/dev/null || true; fi
    stop_dockerd
}
trap cleanup EXIT

# --- tools --------------------------------------------------------------------------------------
need_apt=()
command -v docker >/dev/null || need_apt+=(docker.io)
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || need_apt+=(docker.io)
fi
if [[ ${#need_apt[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || die "missing ${need_apt[*]} and no apt-get to install them"
    log "installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi

# --- docker daemon ------------------------------------------------------------------------------
start_dockerd() {  # $1 = storage driver
    local driver="$1"
    log "starting dockerd (storage driver ${driver}); log: ${WORK}/dockerd.log"
    export DOCKER_HOST="unix://${WORK}/docker.sock"
    dockerd --iptables=false --bridge=none --storage-driver="${driver}" \
        --data-root="${WORK}/docker-root-${driver}" --exec-root="${WORK}/docker-exec" \
        --pidfile="${WORK}/dockerd.pid" --host="${DOCKER_HOST}" \
        >>"${WORK}/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do
        if docker info >/dev/null 2>&1; then return 0; fi
        kill -0 "${DOCKERD_PID}" 2>/dev/null || break
        sleep 1
    done
    tail -n 20 "${WORK}/dockerd.log" >&2 || true
    stop_dockerd
    return 1
}
stop_dockerd() {
    if [[ -n "${DOCKERD_PID}" ]]; then
        kill "${DOCKERD_PID}" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "${DOCKERD_PID}" 2>/dev/null || break; sleep 1; done
        DOCKERD_PID=""
        # dockerd leaves its default network namespace mounted; release it.
        umount "${WORK}/docker-exec/netns/default" 2>/dev/null || true
    fi
}

STORAGE_DRIVER=""
if docker info >/dev/null 2>&1; then
    log "using the running Docker daemon ($(docker info --format '{{.Driver}}'))"
else
    [[ "$(id -u)" == "0" ]] || die "no Docker daemon answers and starting one needs root"
    if start_dockerd overlay2; then
        STORAGE_DRIVER=overlay2
    elif start_dockerd vfs; then
        STORAGE_DRIVER=vfs
    else
        die "could not start dockerd with overlay2 or vfs (see ${WORK}/dockerd.log)"
    fi
fi

# --- host pip settings: how pip reaches the registry here, so the build can do the same ----------
pip_setting() {  # $1 = pip option name (e.g. cert); PIP_* env first, then pip config
    local env_name
    env_name="PIP_$(tr 'a-z-' 'A-Z_' <<<"$1")"
    if [[ -n "${!env_name:-}" ]]; then echo "${!env_name}"; return; fi
    "${PYTHON}" -m pip config list 2>/dev/null \
        | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | head -n 1
}
HOST_CA="$(pip_setting cert)"
HOST_CA="${HOST_CA:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
HOST_INDEX_URL="$(pip_setting index-url)"
HOST_TRUSTED_HOST="$(pip_setting trusted-host)"
[[ -f "${HOST_CA}" ]] || die "host CA bundle ${HOST_CA} not found"
log "host pip: CA bundle ${HOST_CA}; index ${HOST_INDEX_URL:-default (PyPI)}"

# Proxies are predefined build args in Docker; pass them through when the host uses them.
PROXY_ARGS=()
for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    if [[ -n "${!var:-}" ]]; then PROXY_ARGS+=(--build-arg "${var}=${!var}"); fi
done

# --- base image: the real python:3.11-slim, or a stand-in built from debootstrap ----------------
build_standin() {
    if ! docker image inspect "${MINBASE_TAG}" >/dev/null 2>&1; then
        local tarball="${WORK}/bookworm-minbase.tar"
        if [[ ! -s "${tarball}" ]]; then
            if ! command -v debootstrap >/dev/null; then
                log "installing debootstrap"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    debootstrap >/dev/null
            fi
            local rootfs="${WORK}/rootfs"
            rm -rf "${rootfs}"
            log "debootstrap --variant=minbase bookworm (a few minutes); log: ${WORK}/debootstrap.log"
            debootstrap --variant=minbase \
                --include=python3.11,python3-pip,python-is-python3,ca-certificates \
                bookworm "${rootfs}" "${DEBIAN_MIRROR}" >"${WORK}/debootstrap.log" 2>&1 \
                || { tail -n 20 "${WORK}/debootstrap.log" >&2; die "debootstrap failed"; }
            rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/*
            tar -C "${rootfs}" --numeric-owner -cf "${tarball}.part" . && mv "${tarball}.part" "${tarball}"
            rm -rf "${rootfs}"
        fi
        log "docker import -> ${MINBASE_TAG}"
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            "${tarball}" "${MINBASE_TAG}" >/dev/null
    fi

    # The stand-in trusts the host's CA bundle and uses the host's index, so pip inside the
    # project build reaches the registry exactly as pip on the host does.
    local ctx="${WORK}/standin"
    rm -rf "${ctx}" && mkdir -p "${ctx}"
    cp "${HOST_CA}" "${ctx}/host-ca-bundle.crt"
    {
        echo "FROM ${MINBASE_TAG}"
        echo "COPY host-ca-bundle.crt /etc/ssl/certs/host-ca-bundle.crt"
        echo "ENV LANG=C.UTF-8 \\"
        echo "    PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt \\"
        echo "    SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt \\"
        echo "    REQUESTS_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt"
        if [[ -n "${HOST_INDEX_URL}" ]]; then echo "ENV PIP_INDEX_URL=${HOST_INDEX_URL}"; fi
        if [[ -n "${HOST_TRUSTED_HOST}" ]]; then echo "ENV PIP_TRUSTED_HOST=${HOST_TRUSTED_HOST}"; fi
        # Like the official image: `python` and `pip` in /usr/local/bin, pip allowed to install
        # system-wide.
        echo "RUN rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \\"
        echo " && ln -sf /usr/bin/pip3 /usr/local/bin/pip && ln -sf /usr/bin/python3 /usr/local/bin/python \\"
        echo " && python --version && pip --version"
        echo 'CMD ["python3"]'
    } >"${ctx}/Dockerfile"
    log "building stand-in ${BASE_TAG} from ${MINBASE_TAG}"
    DOCKER_BUILDKIT=0 docker build --network=host -t "${BASE_TAG}" "${ctx}"
}

if docker image inspect "${BASE_TAG}" >/dev/null 2>&1; then
    log "base image ${BASE_TAG} already present"
elif timeout 120 docker pull "${BASE_TAG}" >/dev/null 2>&1; then
    log "pulled ${BASE_TAG}"
else
    log "cannot pull ${BASE_TAG}: building a stand-in"
    build_standin
fi

# Functional probe: on some hosts overlay2 starts but cannot run containers; fall back to vfs.
if ! docker run --rm --network=none "${BASE_TAG}" python -c 'print("base ok")'; then
    if [[ "${STORAGE_DRIVER}" == "overlay2" ]]; then
        log "overlay2 cannot run containers here: restarting dockerd with vfs"
        stop_dockerd
        start_dockerd vfs || die "could not start dockerd with vfs"
        STORAGE_DRIVER=vfs
        build_standin
        docker run --rm --network=none "${BASE_TAG}" python -c 'print("base ok")' \
            || die "cannot run containers from ${BASE_TAG}"
    else
        die "cannot run containers from ${BASE_TAG}"
    fi
fi

# --- torch wheel served on 127.0.0.1 (a PEP 503 index: ROOT/torch/<wheel>) ------------------------
if [[ -z "${TORCH_INDEX_URL:-}" ]]; then
    index_root="${WORK}/torch-index"
    mkdir -p "${index_root}/torch"
    if [[ -n "${TORCH_WHEEL:-}" ]]; then
        cp -f "${TORCH_WHEEL}" "${index_root}/torch/"
    elif ! ls "${index_root}/torch/torch-${TORCH_VERSION}"*cp311*.whl >/dev/null 2>&1; then
        log "pip download torch==${TORCH_VERSION} (cp311, manylinux_2_28_x86_64)"
        "${PYTHON}" -m pip download "torch==${TORCH_VERSION}" --no-deps --only-binary=:all: \
            --python-version 3.11 --platform manylinux_2_28_x86_64 -d "${index_root}/torch"
    fi
    wheel_name="$(basename "$(ls "${index_root}/torch/"*.whl | head -n 1)")"
    [[ "${wheel_name}" == *+cpu* ]] \
        || log "WARNING: ${wheel_name} is not a +cpu build; the image will be large"
    # A fixed port when free keeps TORCH_INDEX_URL, and so Docker's build cache, stable.
    port="$("${PYTHON}" -c '
import socket
for port in (38113, 0):
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            print(s.getsockname()[1])
            break
    except OSError:
        pass
')"
    "${PYTHON}" -m http.server --bind 127.0.0.1 --directory "${index_root}" "${port}" \
        >"${WORK}/http.log" 2>&1 &
    HTTP_PID=$!
    TORCH_INDEX_URL="http://127.0.0.1:${port}/"
    for _ in $(seq 20); do
        curl -fsS "${TORCH_INDEX_URL}torch/" >/dev/null 2>&1 && break
        sleep 0.5
    done
    log "serving ${wheel_name} at ${TORCH_INDEX_URL}"
fi

# --- the project image ---------------------------------------------------------------------------
log "docker build ${IMAGE_TAG} (TORCH_INDEX_URL=${TORCH_INDEX_URL})"
build_start=${SECONDS}
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build --network=host \
    --build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL}" \
    --build-arg "TORCH_VERSION=${TORCH_VERSION}" \
    "${PROXY_ARGS[@]}" \
    -t "${IMAGE_TAG}" "${REPO_ROOT}" 2>&1 | tee "${WORK}/build.log"
if grep -q "Running pip as the 'root' user" "${WORK}/build.log"; then
    die "the build prints pip's root-user warning"
fi
log "image built in $((SECONDS - build_start)) s; size: $(docker image inspect \
    --format '{{.Size}}' "${IMAGE_TAG}" | awk '{printf "%.0f MB", $1/1e6}')"

# --- checks inside the image ---------------------------------------------------------------------
log "torch in the image"
docker run --rm --network=none --entrypoint python "${IMAGE_TAG}" \
    -c 'import torch, gymnasium, Box2D; print("torch", torch.__version__, "cuda", torch.version.cuda, "gymnasium", gymnasium.__version__)'

log "run outputs stay out of the image (.dockerignore)"
leaked="$(docker run --rm --network=none --entrypoint ls "${IMAGE_TAG}" -A /app/results \
    | grep -vx '.gitkeep' || true)"
[[ -z "${leaked}" ]] || die "results/ in the image holds: ${leaked}"
docker run --rm --network=none --entrypoint ls "${IMAGE_TAG}" -A /app/trained_models

log "absolute entrypoint"
entrypoint="$(docker image inspect --format '{{json .Config.Entrypoint}}' "${IMAGE_TAG}")"
[[ "${entrypoint}" == '["/'* ]] || die "entrypoint ${entrypoint} is not an absolute path"

log "no VOLUME: the image declares none, so runs leave no anonymous volumes behind"
[[ "$(docker image inspect --format '{{json .Config.Volumes}}' "${IMAGE_TAG}")" == "null" ]] \
    || die "the image declares volumes"

# --- the README's example: both folders mounted, run as a non-root host user ---------------------
host_results="${WORK}/results"
host_models="${WORK}/trained_models"
host_runs="${WORK}/runs"
rm -rf "${host_results}" "${host_models}" "${host_runs}"
mkdir -p "${host_results}" "${host_models}" "${host_runs}"
cp "${REPO_ROOT}/trained_models/leg_34_trained.pt" "${host_models}/"
chown -R "${RUN_AS}" "${host_results}" "${host_models}" "${host_runs}"
volumes_before="$(docker volume ls -q | wc -l)"
run_study() {
    docker run --rm --network=none --user "${RUN_AS}" -v "${host_results}:/app/results" \
        -v "${host_models}:/app/trained_models" -v "${host_runs}:/app/runs" \
        "${IMAGE_TAG}" "${STUDY_ARGS[@]}" "$@"
}
log "docker run --user ${RUN_AS} ... ${IMAGE_TAG} ${STUDY_ARGS[*]}"
run_start=${SECONDS}
run_study
log "study ran in $((SECONDS - run_start)) s"

log "a second run under the same name is refused (exit 2); --overwrite=true replaces it"
set +e
run_study 2>"${WORK}/second.err"
status=$?
set -e
[[ "${status}" == "2" ]] || die "second run: exit status ${status}, expected 2"
grep -q -- "--overwrite=true" "${WORK}/second.err" || die "second run: $(cat "${WORK}/second.err")"
run_study --overwrite=true

[[ "$(docker volume ls -q | wc -l)" == "${volumes_before}" ]] || die "runs left volumes behind"

result_file="${host_results}/${SAVE_NAME}.p"
[[ -s "${result_file}" ]] || die "${result_file} was not written on the host"
[[ -s "${host_models}/${SAVE_NAME}.last.pt" ]] || die "no checkpoint in the mounted models"
[[ -n "$(ls -A "${host_runs}")" ]] || die "no TensorBoard events in the mounted runs/"
root_owned="$(find "${host_results}" "${host_models}" "${host_runs}" -user 0 -print)"
[[ -z "${root_owned}" ]] || die "root-owned files on the host: ${root_owned}"
log "host reads ${result_file}"
"${PYTHON}" - "${result_file}" <<'EOF'
import pickle
import sys

with open(sys.argv[1], "rb") as f:
    results = pickle.load(f)
size = len(results) if hasattr(results, "__len__") else "n/a"
print(f"loaded {type(results).__name__} (len {size}) from {sys.argv[1]}")
EOF

log "PASSED"
