# Two commands do everything on a fresh machine:
#   make demo   set up (venv, torch, reprocheck) and check the bundled RetinaNet example
#   make test   the same set-up, then lint (ruff), types (mypy) and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stack the examples and tests run on: the same pins as the Docker image, from their one place.
include docker/versions.env
TORCH_PINS := torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)

.PHONY: demo test test-fast lint setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml docker/versions.env
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[torch,test]' $(TORCH_PINS)
	touch $@

demo: setup
	$(BIN)/reprocheck run examples/retinanet.yaml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every tier, test workers side by side (one per core; the Docker tests one after another), the 25 slowest named.
# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
TEST_JOBS ?= auto
test: lint
	@$(BIN)/python -m pytest -n $(TEST_JOBS) --dist load --durations=25 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The inner loop: the in-process unit tier only (seconds), no lint.
test-fast: setup
	@$(BIN)/python -m pytest -m unit -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache
