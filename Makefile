# The README's two commands: `make demo` and `make test`. Both set up .venv first when needed.
VENV := .venv

.PHONY: setup demo test clean
setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

# The demo needs only the core and its previews (no torch, no system packages): a light setup of its own, which
# the full one satisfies too.
$(VENV)/.demo-ready: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh --demo

demo: $(VENV)/.demo-ready
	$(VENV)/bin/backchannel demo

test: setup
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) out build *.egg-info
