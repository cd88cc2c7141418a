"""Assemble the directory ``rasa train nlu`` reads, and print its hash.

Run by scripts/rasa-server.sh with the Rasa venv's Python (3.10, PyYAML from Rasa);
it imports nothing from Yimen. It copies the Rasa NLU files of nlu/data (top-level
*.yml files with an ``nlu:`` key: never nlu/data/test/ nor communities.yml), renders
nlu/rasa/config.yml with the DIET epochs and a jieba user dictionary, and adds one
generated file, because Rasa's RegexEntityExtractor only uses lookups named after an
annotated entity: the ``community`` lookup becomes an ``address`` lookup, and the
synonym variants of service names join the ``service`` lookup (as the embedded
backend's EntityExtractor does). The printed hash names the model, so unchanged data
and config never retrain.

    python nlu/rasa/assembly.py --data nlu/data --config nlu/rasa/config.yml \
        --epochs 100 --salt rasa==3.6.21 --out .rasa/projects    # -> .rasa/projects/<hash>/

``--assistant nlu/rasa/stock`` assembles a whole Rasa assistant instead of an NLU model:
that directory's ``domain.yml``, its ``rules.yml`` (as ``data/rules.yml``) and its
``policies.yml`` (the rendered config's policies), for ``rasa train`` with ``--domain``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

GENERATED = "zz-generated-lookups.yml"
DICTIONARY_DIR = "jieba"


def nlu_files(data_dir: Path) -> list[Path]:
    """The Rasa NLU files directly in ``data_dir``: those whose top level has ``nlu:``."""
    files = []
    for path in sorted(data_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "nlu" in document:
            files.append(path)
    return files


def _items(block: Any) -> list[str]:
    if not isinstance(block, str):
        return []
    lines = (line.strip() for line in block.splitlines())
    return [line[2:].strip() for line in lines if line.startswith("- ") and line[2:].strip()]


def vocabulary(files: list[Path]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The lookup tables (name -> values) and synonyms (variant -> canonical) of ``files``."""
    lookups: dict[str, list[str]] = {}
    synonyms: dict[str, str] = {}
    for path in files:
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
            if "lookup" in entry:
                lookups.setdefault(str(entry["lookup"]), []).extend(_items(entry.get("examples")))
            elif "synonym" in entry:
                for variant in _items(entry.get("examples")):
                    synonyms[variant] = str(entry["synonym"])
    return lookups, synonyms


def generated_lookups(lookups: dict[str, list[str]], synonyms: dict[str, str]) -> dict[str, Any]:
    """The extra Rasa NLU document: address and service lookups for RegexEntityExtractor."""
    services = set(lookups.get("service", ()))
    extra = {
        "address": sorted(set(lookups.get("community", ()))),
        "service": sorted(v for v, canonical in synonyms.items() if canonical in services),
    }
    nlu = [
        {"lookup": name, "examples": "".join(f"- {value}\n" for value in values)}
        for name, values in extra.items()
        if values
    ]
    return {"version": "3.1", "nlu": nlu}


def dictionary_words(lookups: dict[str, list[str]], synonyms: dict[str, str]) -> list[str]:
    """Words jieba must keep whole: services, their variants and community names."""
    services = set(lookups.get("service", ()))
    words = services | set(lookups.get("community", ()))
    words |= {v for v, canonical in synonyms.items() if canonical in services}
    return sorted(words)


def rendered_config(config_path: Path, epochs: int) -> dict[str, Any]:
    """nlu/rasa/config.yml with the DIET epochs set and JiebaTokenizer's dictionary added."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"] == "DIETClassifier":
            component["epochs"] = epochs
        elif component["name"] == "JiebaTokenizer":
            # Relative: rasa-server.sh trains from inside the assembled directory.
            component["dictionary_path"] = DICTIONARY_DIR
    return config


def assistant_files(assistant: Path, config: dict[str, Any]) -> dict[str, bytes]:
    """A whole assistant's files from ``assistant``; sets ``config``'s policies."""
    config["policies"] = yaml.safe_load((assistant / "policies.yml").read_text(encoding="utf-8"))
    return {
        "domain.yml": (assistant / "domain.yml").read_bytes(),
        "data/rules.yml": (assistant / "rules.yml").read_bytes(),
    }


def assemble(
    data_dir: Path,
    config_path: Path,
    epochs: int,
    salt: str,
    out: Path,
    assistant: Path | None = None,
) -> str:
    """Write the training directory to ``out/<hash>`` and return the hash of its contents."""
    files = nlu_files(data_dir)
    if not files:
        raise SystemExit(f"no Rasa NLU files (with a top-level 'nlu:' key) in {data_dir}")
    lookups, synonyms = vocabulary(files)
    contents: dict[str, bytes] = {f"data/{p.name}": p.read_bytes() for p in files}
    contents[f"data/{GENERATED}"] = yaml.safe_dump(
        generated_lookups(lookups, synonyms), allow_unicode=True, sort_keys=False
    ).encode()
    config = rendered_config(config_path, epochs)
    if assistant is not None:
        contents.update(assistant_files(assistant, config))
    contents["config.yml"] = yaml.safe_dump(config, allow_unicode=True, sort_keys=False).encode()
    words = dictionary_words(lookups, synonyms)
    contents[f"{DICTIONARY_DIR}/userdict.txt"] = "".join(f"{w}\n" for w in words).encode()

    digest = hashlib.sha256(salt.encode())
    for name in sorted(contents):
        digest.update(name.encode() + b"\0" + contents[name] + b"\0")
    key = digest.hexdigest()[:16]
    # One directory per hash, renamed into place whole: a training that is still
    # reading an older project never sees its files change.
    target = out / key
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out))
        for name, content in contents.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        try:
            tmp.rename(target)
        except OSError:  # another run assembled the same project meanwhile
            shutil.rmtree(tmp)
    return key


def main(argv: list[str] | None = None) -> int:
    """Command line: assemble, then print the hash on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--salt", default="", help="e.g. the Rasa version, part of the hash")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--assistant", type=Path, help="domain, rules and policies to add")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    print(assemble(args.data, args.config, args.epochs, args.salt, args.out, args.assistant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
