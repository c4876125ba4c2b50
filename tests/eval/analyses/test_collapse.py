from harness.eval.analyses.collapse import collapse_reasons


def test_equal_depth_losses_flag_a_run():
    reasons = collapse_reasons({"val/depth_1": 6.401, "val/depth_2": 6.405, "val/depth_3": 6.39}, 6.4, 7.0)
    assert len(reasons) == 1 and "same validation loss" in reasons[0]


def test_a_loss_near_the_unigram_flags_a_run():
    reasons = collapse_reasons({"val/depth_1": 6.45}, 6.45, 6.6)
    assert len(reasons) == 1 and "unigram" in reasons[0]


def test_a_learning_run_is_not_flagged():
    assert collapse_reasons({"val/depth_1": 4.2, "val/depth_2": 5.6}, 4.2, 6.6) == []
    assert collapse_reasons({"val/depth_1": 4.2}, None, None) == []


def test_equal_depths_do_not_flag_an_objective_whose_deeper_depths_read_more():
    """DeepSeek's module k reads token t+k-1: its depth 2 is a next-token problem with more
    context, and a healthy run's depth 2 can match depth 1 (the laptop study's lr 3e-3 point:
    4.427 and 4.422, better than STP). The sweep must not throw that point away."""
    from harness.model.objectives.deepseek import DeepSeekConfig
    from harness.model.objectives.meta import MetaConfig

    val = {"val/depth_1": 4.427, "val/depth_2": 4.422}
    assert not DeepSeekConfig.deeper_depths_are_harder and MetaConfig.deeper_depths_are_harder
    assert collapse_reasons(val, 4.43, 6.6, deeper_depths_are_harder=False) == []
    assert collapse_reasons(val, 4.43, 6.6, deeper_depths_are_harder=True)  # Meta's heads: flagged
    # the near-unigram sign still applies to every objective
    assert collapse_reasons(val, 6.5, 6.6, deeper_depths_are_harder=False)
