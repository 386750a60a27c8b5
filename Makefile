# df-stack: every target creates what it needs (.venv, missing apt packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NETNS := scripts/in_netns.sh
export MUJOCO_GL ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: help venv test test-loaded test-slow test-fast lint demo demo-memory bench-paper bench bench-latency bench-sim bench-crash bench-recorder bench-train bench-e2e bench-view clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml constraints.txt scripts/bootstrap_system.sh
	@scripts/bootstrap_system.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first from the exact pin, so the range in pyproject never pulls a CUDA build here
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[data,train,sim,ros,test]'
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with all extras

test: $(STAMP)  ## lint and the whole test suite (ROS tests in a private network namespace)
	$(VENV)/bin/ruff check .
	$(NETNS) $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-loaded: $(STAMP)  ## make test with two CPU-bound processes beside it (the suite must pass on a busy machine)
	scripts/test_under_load.sh 2

test-slow: $(STAMP)  ## the slow tests only (trainings that prove the policy learns; minutes)
	$(NETNS) $(PY) -m pytest -m slow $(PYTEST_ARGS)

test-fast: $(STAMP)  ## tests without ROS, sim or slow markers
	$(PY) -m pytest -m "not slow and not ros and not sim" $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check .

demo: $(STAMP)  ## swap fruit on the simulated Franka: record demos, train DF, run it through the ROS 2 nodes, report
	$(NETNS) $(PY) -m dfstack.demo $(DEMO_ARGS)

demo-memory: $(STAMP)  ## the synthetic memory task: DF vs teacher forcing vs memoryless in 3 minutes
	$(PY) -m policy.synthetic_memory --report-dir reports/memory_demo

bench-paper: $(STAMP)  ## the paper's table in simulation: DF vs memoryless vs teacher forcing, 3 seeds (hours)
	$(PY) -m benchmarks.bench_paper $(BENCH_PAPER_ARGS)

bench-latency: $(STAMP)  ## DF tick vs a Diffusion-Policy-size reference at equal threads (1 and 2), per call and per robot-second
	$(PY) -m benchmarks.bench_latency

bench-sim: $(STAMP)  ## simulator steps/s with two 96 px cameras, and 100 expert demos with 2 processes
	$(PY) -m benchmarks.bench_sim

bench-crash: $(STAMP)  ## SIGKILL a recording process at random instants; committed episodes must survive
	$(PY) -m benchmarks.bench_crash

bench-recorder: $(STAMP)  ## two 640x480 cameras at 30 Hz + 1 kHz state for 60 s through the recorder
	$(PY) -m benchmarks.bench_recorder

bench-train: $(STAMP)  ## training tokens/s on this CPU and the reader's speed against the trainer's demand
	$(PY) -m benchmarks.bench_train

bench-view: $(STAMP)  ## render time of `dfstack data view` for a 10 s episode (two 640x480 cameras at 30 Hz)
	$(PY) -m benchmarks.bench_view

bench-e2e: $(STAMP)  ## image stamp to command publish latency through the ROS nodes (network namespace)
	$(NETNS) $(PY) -m benchmarks.bench_e2e

bench: bench-latency bench-sim bench-crash bench-recorder bench-train bench-e2e bench-view  ## every benchmark

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
