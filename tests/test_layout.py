"""Imports point one way (docs/architecture.md): each room imports only the rooms below it, so the runtime never
pulls in training, the corpus or evaluation, and nothing imports back up. Read from the source (every import,
those inside functions too), not from what happens to be loaded."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = {"bridge": "backchannel.bridge", "models": "backchannel.models", "calibration": "backchannel.calibration"}

# rooms from the bottom up; a room may import itself and any room before it
ROOMS = [
    ["backchannel.models.motion", "backchannel.models.audio", "backchannel.models.atomic", "backchannel.models.cpus",
     "backchannel.models.phones", "backchannel.models"],
    ["backchannel.models.frontend", "backchannel.models.measures", "backchannel.models.generator",
     "backchannel.calibration"],
    ["backchannel.models.baseline", "backchannel.models.infp", "backchannel.models.render"],
    ["backchannel.models.corpus"],
    ["backchannel.models.evaluation", "backchannel.models.training"],
    ["backchannel.bridge.protocol", "backchannel.bridge.jitter", "backchannel.bridge.outputs", "backchannel.bridge.bake",
     "backchannel.bridge.security", "backchannel.bridge.governor", "backchannel.bridge.devices",
     "backchannel.bridge.websocket"],
    ["backchannel.bridge.worker", "backchannel.bridge.client"],
    ["backchannel.bridge.scaleout"],
    ["backchannel.bridge.latency", "backchannel.bridge.loadgen"],
    ["backchannel.bridge.cli", "backchannel.bridge"],
]
RUNTIME_NEVER = ("backchannel.models.training", "backchannel.models.corpus", "backchannel.models.evaluation")


def room_of(module: str) -> int:
    """The room of the longest matching name."""
    best = max((name for room in ROOMS for name in room if module == name or module.startswith(name + ".")), key=len)
    return next(i for i, room in enumerate(ROOMS) if best in room)


def modules():
    for top, package in PACKAGES.items():
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT / top).with_suffix("").parts
            name = ".".join([package, *parts]).removesuffix(".__init__")
            yield name, path


def imports(name: str, path: Path):
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            # "from package import module" names a module when one exists by that name
            folder = ROOT.joinpath(*base.split(".")[1:])
            for alias in node.names:
                is_module = (folder / alias.name).is_dir() or (folder / f"{alias.name}.py").is_file()
                yield f"{base}.{alias.name}" if is_module else base


ALL = list(modules())


@pytest.mark.parametrize("name, path", ALL, ids=[name for name, _ in ALL])
def test_each_module_imports_only_its_own_room_and_those_below(name, path):
    own = room_of(name)
    above = sorted({m for m in imports(name, path) if m.startswith("backchannel.") and room_of(m) > own})
    assert not above, f"{name} (room {own}) imports from above: {above}"


def test_the_runtime_never_imports_training_corpus_or_evaluation():
    runtime = [(n, p) for n, p in ALL if not n.startswith(RUNTIME_NEVER) and not n.startswith("backchannel.bridge.cli")
               and not n.startswith("backchannel.models.render")]
    assert len(runtime) > 20
    for name, path in runtime:
        bad = sorted({m for m in imports(name, path) if m.startswith(RUNTIME_NEVER)})
        assert not bad, f"{name} imports {bad}"
