# Two commands do everything on a fresh machine:
#   make demo   set up (venv, torch, reprocheck) and check the bundled RetinaNet example
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stack the examples and tests run on (the Docker image pins the same: docker/versions.env).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test]' $(TORCH_PINS)
	touch $@

demo: setup
	$(BIN)/reprocheck run examples/retinanet.yaml

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
test: setup
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache
