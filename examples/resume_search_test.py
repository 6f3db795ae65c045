"""examples/resume_search.py: a search killed after its first epoch ends as if never killed."""

import resume_search


def test_killed_and_resumed_search_matches_the_uninterrupted_one(tmp_path):
    straight, killed, resumed, epochs_run = resume_search.main(
        [f"--directory={tmp_path}", "--epochs=3", "--max_trials=3"]
    )
    assert killed
    assert 0 not in epochs_run  # The restart continued from the checkpoint.
    assert len(straight) == 3
    assert resumed == straight
