"""PNG rendering of images, filters, feature maps and heatmaps (Pillow + matplotlib's Agg
canvas; no display and no global backend switch is needed). ``*_figure`` functions return a
matplotlib ``Figure`` (for notebooks); ``save_*`` functions write PNGs."""
from .images import (  # noqa: F401
    colorize, explanation_figure, feature_map_figure, filter_grid, load_image, make_grid, overlay,
    save_explanation, save_feature_maps, save_filter_grid, save_image, save_overlay, to_uint8,
)

__all__ = ["load_image", "make_grid", "save_image", "to_uint8", "filter_grid", "save_filter_grid",
           "feature_map_figure", "save_feature_maps", "colorize", "overlay", "save_overlay",
           "explanation_figure", "save_explanation"]
