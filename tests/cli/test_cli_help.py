"""`pyroclast --help` and `pyroclast crd --help` speak to users, not to the code's maintainers."""

from __future__ import annotations

import pytest

from pyroclast.cli import main

DEVELOPER_WORDS = ("Register", "registers itself", "module", "subparsers")


@pytest.mark.parametrize(
    ("argv", "opening"),
    [
        (["crd", "--help"], "Print the CustomResourceDefinitions"),
        (["runtime", "--help"], "list and show the runtimes"),
        (["--help"], "Distributed PyTorch training on Kubernetes"),
    ],
)
def test_help_opens_with_what_the_command_does(
    argv: list[str], opening: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    description = text.split("options:", 1)[0].split("]", 1)[-1]
    assert opening in text
    for word in DEVELOPER_WORDS:
        assert word not in description, (word, description)
