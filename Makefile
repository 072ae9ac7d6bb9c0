# The README's two commands: `make demo` and `make test`. Both set up .venv first when needed.
VENV := .venv

.PHONY: setup demo test clean
setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/backchannel demo

test: setup
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) out build *.egg-info
