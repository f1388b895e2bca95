# Landmark photo search: `make run` starts the whole stack on this machine, `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
# Where to browse: the nginx front (deploy/nginx) when nginx is installed, gunicorn on loopback behind it.
# Without nginx (or with FRONT=0) gunicorn itself serves FRONT_HOST:FRONT_PORT, and make run says so.
FRONT ?= auto
FRONT_HOST ?= 127.0.0.1
FRONT_PORT ?= 8000
NGINX := $(if $(filter 0,$(FRONT)),,$(shell command -v nginx 2>/dev/null || ls /usr/sbin/nginx /usr/local/sbin/nginx 2>/dev/null | head -n 1))
ifneq ($(NGINX),)
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8001
# gunicorn is reached only through the front, which overwrites X-Real-IP with the client's address.
export CLIENT_IP_HEADER ?= HTTP_X_REAL_IP
PROCESSES :=
else
WEB_HOST ?= $(FRONT_HOST)
WEB_PORT ?= $(FRONT_PORT)
PROCESSES := $(shell grep -v '^front:' Procfile | cut -d: -f1)
endif
REDIS_PORT ?= 6390
MILVUS_PORT ?= 19530
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/landmarks

export VAR_DIR ?= $(CURDIR)/var
export REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
export MILVUS_URI ?= http://127.0.0.1:$(MILVUS_PORT)
export WEB_HOST WEB_PORT FRONT_HOST FRONT_PORT REDIS_PORT MILVUS_PORT

.PHONY: install lock run test lint typecheck bench clean

# The exact versions of requirements.lock, then the project itself (editable, its extras' tools included).
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Re-resolve requirements.lock from pyproject.toml (after changing a dependency), without this checkout's
# own path in it.
lock:
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --no-emit-find-links --no-emit-index-url \
	  --output-file requirements.lock pyproject.toml
	awk '/^landmark-search @ /{skip=1; next} skip && /^    #/{next} {skip=0; print}' requirements.lock \
	  > requirements.lock.tmp && mv requirements.lock.tmp requirements.lock

run: install
	mkdir -p $(VAR_DIR)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
ifneq ($(NGINX),)
	@echo "Landmark search is starting on http://$(FRONT_HOST):$(FRONT_PORT)/ (Ctrl-C stops everything): nginx in front ($(NGINX), deploy/nginx), gunicorn behind it on $(WEB_HOST):$(WEB_PORT)"
else
	@echo "Landmark search is starting on http://$(WEB_HOST):$(WEB_PORT)/ (Ctrl-C stops everything)"
	@echo "No nginx front ($(if $(filter 0,$(FRONT)),FRONT=0,nginx is not installed: apt install nginx)): gunicorn serves directly; one flooding client can slow search for everyone (docs/deployment/front.md)"
endif
	@echo "Next, in another terminal: $(PY) manage.py createsuperuser (your first account), then $(PY) manage.py import_images /path/to/your/photos (see README.md)"
	@# honcho stops every process as soon as one exits: a dead worker, Redis or Milvus never leaves a
	@# half-stack that looks alive (tests/test_supervision.py).
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/honcho -f Procfile start $(PROCESSES) || { \
	  echo "make run: the stack stopped: Ctrl-C, or the process shown 'stopped (rc=...)' above exited and honcho stopped all the others. Fix it and run make run again (no queued work is lost: Redis keeps an AOF under $(VAR_DIR)/redis and the reconciler re-sends what was interrupted)."; exit 1; }

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

test: install lint typecheck
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(VENV)/bin/pytest
	DATABASE_URL=$(TEST_POSTGRES_URL) $(VENV)/bin/pytest tests/webapp tests/workers tests/e2e -m "not browser"

DATASETS ?= ../shared/datasets

bench: install
	$(PY) bench/embed_throughput.py --images $(DATASETS)/wonders7 --limit 96
	$(PY) bench/search_latency.py --dataset $(DATASETS)/sfm_landmarks --queries 30
	$(PY) bench/rerank_latency.py --dataset $(DATASETS)/holidays_partial --queries 30
	$(PY) bench/train_throughput.py --images $(DATASETS)/wonders7

clean:
	rm -rf $(VAR_DIR)
