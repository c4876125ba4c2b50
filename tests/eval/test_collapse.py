from harness.eval.collapse import collapse_reasons


def test_equal_depth_losses_flag_a_run():
    reasons = collapse_reasons({"val/depth_1": 6.401, "val/depth_2": 6.405, "val/depth_3": 6.39}, 6.4, 7.0)
    assert len(reasons) == 1 and "same validation loss" in reasons[0]


def test_a_loss_near_the_unigram_flags_a_run():
    reasons = collapse_reasons({"val/depth_1": 6.45}, 6.45, 6.6)
    assert len(reasons) == 1 and "unigram" in reasons[0]


def test_a_learning_run_is_not_flagged():
    assert collapse_reasons({"val/depth_1": 4.2, "val/depth_2": 5.6}, 4.2, 6.6) == []
    assert collapse_reasons({"val/depth_1": 4.2}, None, None) == []
