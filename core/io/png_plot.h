#pragma once

// Small dependency-free charts (line and bar) rendered into an RgbImage, for reports that must be
// written without Qt or a plotting library. Text is stb_easy_font, magnified; ASCII only.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/image_export.h"

namespace scalpel {

struct Rgb {
  unsigned char r = 0, g = 0, b = 0;
  bool operator==(const Rgb& other) const { return r == other.r && g == other.g && b == other.b; }
};

// The colour charts give the i-th series (or bar series) when none is set: a colour-blind-safe
// palette that repeats after eight.
Rgb plotPalette(std::size_t index);

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // the same length; NaN or infinite points are skipped (a gap)
  std::optional<Rgb> colour;
  bool line = true;  // false: markers only
};

struct LineChart {
  std::string title, xLabel, yLabel;
  std::vector<PlotSeries> series;
  int width = 800, height = 450;
};

// Bars from the axis to each value, with an optional marker per bar (e.g. a noise floor) drawn as
// a dark tick across it. Non-positive values are left out on a log scale.
struct BarChart {
  std::string title, valueLabel;
  std::vector<std::string> names;
  std::vector<double> values;
  std::vector<double> markers;  // empty, or one per bar (NaN: none for that bar)
  // Empty, or one per bar: a whisker from value - error to value + error (e.g. a standard
  // deviation over seeds); NaN or non-positive: none for that bar.
  std::vector<double> errors;
  std::vector<Rgb> barColours;  // empty, or one per bar (overrides `colour` for that bar)
  std::string valueName = "value", markerName = "marker";  // the legend
  bool horizontal = true;                                  // names on the left, bars to the right
  bool logScale = false;
  std::optional<Rgb> colour;
  int width = 800, height = 450;
};

RgbImage renderLineChart(const LineChart& chart);
RgbImage renderBarChart(const BarChart& chart);
// One image above the other, centred, on white.
RgbImage stackImages(const std::vector<RgbImage>& images);

std::string encodePng(const RgbImage& image);
// Writes the image as a PNG file, atomically. Returns "" or the error.
std::string writePng(const RgbImage& image, const std::filesystem::path& file);

}  // namespace scalpel
