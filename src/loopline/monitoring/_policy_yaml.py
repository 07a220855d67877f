"""Reading a monitoring policy YAML file with the line of every key, for error messages."""

from __future__ import annotations

from typing import Any

from loopline.errors import InvalidInput
from loopline.monitoring._policy_parse import KeyPath


def load_yaml(text: str, source: str) -> tuple[object, dict[KeyPath, int]]:
    """The document in `text` and the line of each key and list item, by path
    (`("actions", 0, "when")`). Raises InvalidInput for YAML that does not parse, an
    empty document or a repeated key, naming the line."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput(f"{source} is empty", hint="write at least 'window: 1h'")
        lines: dict[KeyPath, int] = {}
        _note_lines(node, (), lines, set(), source)
        return loader.construct_document(node), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"{source} is not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


def _note_lines(
    node: Any, path: KeyPath, lines: dict[KeyPath, int], seen: set[int], source: str
) -> None:
    import yaml

    if id(node) in seen:  # an alias of a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in keys:
                raise InvalidInput(f"{source} line {line}: the key {key!r} is repeated")
            keys.add(key)
            lines[(*path, key)] = line
            _note_lines(value_node, (*path, key), lines, seen, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _note_lines(item, (*path, index), lines, seen, source)
