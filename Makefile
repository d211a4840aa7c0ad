# tollgate: the two commands a newcomer needs are `make run` and `make test`.
# CMake does the building; this file only drives it.
SAN ?= 0
BUILD_DIR := $(if $(filter 1,$(SAN)),build-san,build)
CMAKE_FLAGS := $(if $(filter 1,$(SAN)),-DTG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug,)
JOBS ?= $(shell nproc)
PY := /usr/bin/python3
FUZZ_TIME ?= 60

.PHONY: all build deps run test unit integration bench fuzz clean lint

all: build

deps:
	@scripts/deps.sh

build:
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS) -- --no-print-directory
	@ln -sf $(BUILD_DIR)/compile_commands.json compile_commands.json

run: deps build
	@scripts/quickstart.sh $(BUILD_DIR)/tollgate

test: deps build
	@$(MAKE) --no-print-directory unit integration

unit:
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

integration:
	@TOLLGATE_BIN=$(CURDIR)/$(BUILD_DIR)/tollgate TOLLGATE_SAN=$(SAN) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/integration

bench:
	@scripts/deps.sh --bench
	@$(MAKE) --no-print-directory build
	@bench/run.sh $(CURDIR)/$(BUILD_DIR)/tollgate

fuzz:
	@scripts/fuzz.sh $(FUZZ_TIME)

lint:
	@scripts/check-size.sh

clean:
	rm -rf build build-san build-fuzz compile_commands.json
