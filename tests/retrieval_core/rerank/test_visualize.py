import numpy as np

from retrieval_core.rerank.visualize import draw_matches


def test_draws_both_images_at_one_height_with_a_line_per_match():
    query = np.full((100, 200, 3), 40, np.uint8)
    result = np.full((300, 300, 3), 40, np.uint8)
    points = np.array([[10, 10, 150, 150], [190, 90, 20, 280]], np.float32)
    canvas = draw_matches(query, result, points, height=150)
    assert canvas.shape == (150, 300 + 150, 3)
    assert (canvas != 40).any(axis=2).sum() > 100  # lines and circles were drawn
    empty = draw_matches(query, result, np.zeros((0, 4)), height=150)
    assert (empty == 40).all()
