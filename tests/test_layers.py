"""The layering of ARCHITECTURE.md: a module imports only from its own or lower layers, never the facade."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'swift'
LAYERS = {
    'protocol': 0, 'utils': 0,
    'hub': 1, 'arguments': 1,
    'model': 2, 'template': 2, 'dataset': 2, 'tuners': 2,
    'trainers': 3, 'rlhf': 3, 'infer': 3, 'export': 3,
    'pipelines': 4,
    'cli': 5,
}
# Packages of layer 2 are peers that must not know each other (a ModelMeta names its template by string).
PEERS = {'model', 'template', 'dataset', 'tuners'}
# A consumer's own flags, declared beside the code that reads them: data-only modules that the argument groups
# of layer 1 compose into each command's arguments.
SETTINGS = {'tuners.arguments': 1, 'infer.arguments': 1, 'dataset.arguments': 1}


def _swift_imports(path: pathlib.Path) -> set[str]:
    """Top-level swift packages that ``path`` imports (absolute or relative)."""
    package_parts = path.relative_to(PACKAGE.parent).with_suffix('').parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[:len(package_parts) - node.level + 1]
                parts = [*base, *(node.module.split('.') if node.module else [])]
                names = [parts] if node.module or len(base) > 1 else [[*base, a.name] for a in node.names]
            else:
                names = [node.module.split('.')] if node.module else []
            found |= {_package(p) for p in names if len(p) > 1 and p[0] == 'swift'}
        elif isinstance(node, ast.Import):
            found |= {_package(a.name.split('.')) for a in node.names if a.name.startswith('swift.')}
    return found


def _package(parts: list[str]) -> str:
    """The package an import names: its top-level package, or a settings module of SETTINGS."""
    settings = '.'.join(parts[1:3])
    return settings if settings in SETTINGS else parts[1]


def _modules():
    return [p for p in PACKAGE.rglob('*.py') if p.relative_to(PACKAGE).parts[0] in LAYERS]


@pytest.mark.parametrize('path', _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_the_layers(path):
    own = path.relative_to(PACKAGE).parts[0]
    own = own[:-3] if own.endswith('.py') else own
    for imported in _swift_imports(path) - {own}:
        if imported in SETTINGS:
            settings_module = PACKAGE / (imported.replace('.', '/') + '.py')
            assert SETTINGS[imported] <= LAYERS[own], f'{path}: layer {LAYERS[own]} imports swift.{imported}'
            assert _swift_imports(settings_module) <= {'utils', imported.split('.')[0]}, settings_module
            continue
        assert imported != 'llm', f'{path}: imports the facade swift.llm'
        assert imported in LAYERS, f'{path}: imports unknown package swift.{imported}'
        assert LAYERS[imported] <= LAYERS[own], f'{path}: layer {LAYERS[own]} imports swift.{imported}'
        assert not (own in PEERS and imported in PEERS), f'{path}: layer-2 peers {own} and {imported}'
