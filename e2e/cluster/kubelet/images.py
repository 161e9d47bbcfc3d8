"""What a container's image would have supplied, for the project's own images: ENTRYPOINT, CMD, USER, WORKDIR.

Process nodes pull no image. For an image built from one of the project's Dockerfiles
(`deploy/images/<name>.Dockerfile`, image repository `<name>` or `pyroclast-<name>`, any registry and tag)
the kubelet stand-in reads those instructions from the Dockerfile's final stage, so a pod that relies on
them (the operator's Deployment names no command) runs as it would from the image. Other images must set
`command`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's config a container start uses."""

    entrypoint: list[str]
    cmd: list[str]
    user: str | None = None
    workdir: str | None = None


def _words(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return [str(w) for w in json.loads(value)]
    return ["/bin/sh", "-c", value]


def parse_dockerfile(text: str) -> ImageConfig:
    """ENTRYPOINT, CMD, USER and WORKDIR of the final stage (a later FROM resets them)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    user: str | None = None
    workdir: str | None = None
    joined = text.replace("\\\n", " ")
    for line in joined.splitlines():
        parts = line.strip().split(None, 1)
        if not parts or parts[0].startswith("#"):
            continue
        op, rest = parts[0].upper(), parts[1] if len(parts) > 1 else ""
        if op == "FROM":
            entrypoint, cmd, user, workdir = [], [], None, None
        elif op == "ENTRYPOINT":
            entrypoint, cmd = _words(rest), []  # as Docker: a new ENTRYPOINT clears an inherited CMD
        elif op == "CMD":
            cmd = _words(rest)
        elif op == "USER":
            user = shlex.split(rest)[0]
        elif op == "WORKDIR":
            workdir = rest.strip()
    return ImageConfig(entrypoint, cmd, user, workdir)


def repository_name(image: str) -> str:
    """`ghcr.io/org/pyroclast-operator:v1@sha256:..` -> `pyroclast-operator`."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def image_config(image: str, source: Path) -> ImageConfig | None:
    """The config of one of the project's images, None for any other image."""
    name = repository_name(image)
    for stem in (name, name.removeprefix("pyroclast-")):
        dockerfile = source / "deploy" / "images" / f"{stem}.Dockerfile"
        if dockerfile.is_file():
            return parse_dockerfile(dockerfile.read_text())
    return None
