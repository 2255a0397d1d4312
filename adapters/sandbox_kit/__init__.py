"""Pieces every provider simulator reuses: fault injection, a call log, OpenAPI request checks and a local server."""
from adapters.sandbox_kit.calllog import CONTROL_PREFIX, Call, CallLog, is_control_path
from adapters.sandbox_kit.faults import FAULT_KINDS, Fault, FaultInjector
from adapters.sandbox_kit.server import SandboxServer, SimulatorBase, build_app, with_query
from adapters.sandbox_kit.specvalidate import OpenAPISpec, Operation, Problem

__all__ = [
    "CONTROL_PREFIX", "Call", "CallLog", "FAULT_KINDS", "Fault", "FaultInjector", "OpenAPISpec", "Operation",
    "Problem", "SandboxServer", "SimulatorBase", "build_app", "is_control_path", "with_query",
]
