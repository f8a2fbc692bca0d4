# CPU-only image for transfer_rl.
#
#   docker build -t transfer_rl .
#   docker run --rm -v "$PWD/results:/app/results" -v "$PWD/trained_models:/app/trained_models" \
#       transfer_rl --save_name=demo --leg_length=30 --initial_model=leg_34_trained
#
# The torch wheel source is a build argument so the image can be built against a local wheel
# folder (any PEP 503 index, e.g. `python -m http.server` over DIR/torch/<wheel>):
#   docker build --build-arg TORCH_INDEX_URL=http://127.0.0.1:8000/ -t transfer_rl .
FROM python:3.11-slim

# Where the CPU-only torch wheel comes from; the CUDA build from PyPI is several GB.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
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

# Declared after the COPY on purpose: an anonymous or empty named volume is initialised from
# the image, so the shipped sample policy trained_models/leg_34_trained.pt stays visible when
# nothing is mounted. A bind mount replaces the folder: mount the repo's trained_models/.
VOLUME ["/app/results", "/app/trained_models", "/app/runs"]

ENTRYPOINT ["python", "run.py"]
