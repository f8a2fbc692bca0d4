# CPU-only image for transfer_rl.
#
#   docker build -t transfer_rl .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/results:/app/results" \
#       -v "$PWD/trained_models:/app/trained_models" -v "$PWD/runs:/app/runs" \
#       transfer_rl --save_name=demo --leg_length=30 --initial_model=leg_34_trained
#
# Run as the host user (--user), the files the study writes into the mounted folders are the
# user's, not root's; the image needs no home folder and writes nowhere else.
#
# The torch wheel source is a build argument so the image can be built against a local wheel
# folder (any PEP 503 index, e.g. `python -m http.server` over DIR/torch/<wheel>):
#   docker build --build-arg TORCH_INDEX_URL=http://127.0.0.1:8000/ -t transfer_rl .
# A patch-level tag: rebuilding next year gives the same Python.
FROM python:3.11.14-slim-bookworm

# Where the CPU-only torch wheel comes from; the CUDA build from PyPI is several GB.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SDL_VIDEODRIVER=dummy \
    SDL_AUDIODRIVER=dummy

WORKDIR /app

# torch alone from the CPU source first (no deps: a local wheel folder holds only torch) ...
RUN pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# ... then the rest from the default index. Naming torch again pulls in its dependencies while
# the CPU build already installed satisfies the pin, so pip keeps it.
COPY requirements.txt ./
RUN pip install "torch==${TORCH_VERSION}" -r requirements.txt

COPY . .

# The output folders are writable by whatever --user the container runs as, for those not
# mounted from the host (their files then go with the container).
RUN mkdir -p results trained_models runs && chmod 1777 results trained_models runs

# No VOLUME: it would leave an anonymous volume behind after every run and protect nothing.
# Mount the host's results/, trained_models/ (it holds the shipped policies) and runs/ instead.
ENTRYPOINT ["/usr/local/bin/python", "/app/run.py"]
