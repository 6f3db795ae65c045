"""examples/darts_digits.py derives a valid cell and writes its diagrams."""

import darts_digits

import tfnas

OPS = "none,skip_connect,sep_conv_3x3"


def test_darts_derives_a_valid_architecture_and_draws_its_cells(tmp_path, capsys):
    tuner, values, pngs = darts_digits.main(
        ["--epochs=1", "--init_channels=4", "--num_cells=3", "--num_nodes=1",
         f"--operations={OPS}", f"--output_dir={tmp_path}"]
    )  # fmt: skip
    for path in pngs.values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    space = tfnas.spaces.DartsSpace(
        (8, 8, 1), 10, init_channels=4, num_cells=3, num_nodes=1, operations=OPS.split(",")
    )
    tfnas.Architecture(space, values)  # Validates the derived values against the space.
    # DARTS keeps each node's two strongest inputs, never through a "none" edge.
    for cell in ("normal", "reduce"):
        kept = values[f"{cell}/node0/inputs"].split(",")
        assert len(kept) == 2 and all(values[f"{cell}/node0/edge{i}"] != "none" for i in kept)
    # The derived architecture is the trial that was evaluated and is returned.
    assert tuner.get_best_hyperparameters(1)[0].values == values
    assert "normal: [(" in capsys.readouterr().out
