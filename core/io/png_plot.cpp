#include "io/png_plot.h"

#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>

#include "files/atomic_file.h"

// stb_easy_font is all static functions; not every one is used here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

namespace scalpel {

namespace {

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kInk{33, 33, 33};
constexpr Rgb kAxis{110, 110, 110};
constexpr Rgb kGrid{226, 226, 226};
constexpr int kTextScale = 2;
constexpr int kLineHeight = 12 * kTextScale;  // stb_easy_font's line height, magnified
constexpr int kCapHeight = 7 * kTextScale;

// stb_easy_font indexes its tables by (char - 32): anything outside printable ASCII becomes '?',
// but for the superscript two of "R²", spelled "R^2".
std::string printable(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "\u00b2") == 0) {
      out += "^2";
      ++i;
    } else {
      out += text[i] < 32 || text[i] > 126 ? '?' : text[i];
    }
  }
  return out;
}

int textWidth(const std::string& text) {
  std::string copy = printable(text);
  return copy.empty() ? 0 : stb_easy_font_width(copy.data()) * kTextScale;
}

// Cuts text from the left ("...ures.3.conv") so that it fits, keeping the informative tail.
std::string fitText(const std::string& text, int width) {
  if (textWidth(text) <= width) return text;
  for (std::size_t cut = 1; cut < text.size(); ++cut) {
    std::string shorter = "..." + text.substr(cut);
    if (textWidth(shorter) <= width) return shorter;
  }
  return {};
}

class Canvas {
 public:
  Canvas(int width, int height) {
    m_image.width = std::max(width, 1);
    m_image.height = std::max(height, 1);
    m_image.pixels.assign(static_cast<std::size_t>(m_image.width) * m_image.height * 3, 255);
    resetClip();
  }
  RgbImage take() { return std::move(m_image); }
  void clip(int x0, int y0, int x1, int y1) { m_clip = {x0, y0, x1, y1}; }
  void resetClip() { m_clip = {0, 0, m_image.width, m_image.height}; }

  // Fills [x0, x1) × [y0, y1).
  void fill(int x0, int y0, int x1, int y1, Rgb colour) {
    x0 = std::max(x0, m_clip[0]), y0 = std::max(y0, m_clip[1]);
    x1 = std::min(x1, m_clip[2]), y1 = std::min(y1, m_clip[3]);
    for (int y = y0; y < y1; ++y) {
      for (int x = x0; x < x1; ++x) {
        auto* p = &m_image.pixels[(static_cast<std::size_t>(y) * m_image.width + x) * 3];
        p[0] = colour.r, p[1] = colour.g, p[2] = colour.b;
      }
    }
  }
  void frame(int x0, int y0, int x1, int y1, Rgb colour) {
    fill(x0, y0, x1, y0 + 1, colour), fill(x0, y1 - 1, x1, y1, colour);
    fill(x0, y0, x0 + 1, y1, colour), fill(x1 - 1, y0, x1, y1, colour);
  }
  // A line `thickness` pixels wide: a square stamped along it.
  void line(double x0, double y0, double x1, double y1, Rgb colour, int thickness = 3) {
    const double steps = std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)));
    if (!std::isfinite(steps) || steps > 1e5) return;
    for (int i = 0; i <= static_cast<int>(steps); ++i) {
      const double t = steps > 0 ? i / steps : 0;
      const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))) - thickness / 2;
      const int y = static_cast<int>(std::lround(y0 + t * (y1 - y0))) - thickness / 2;
      fill(x, y, x + thickness, y + thickness, colour);
    }
  }
  // Text with its top-left corner at (x, y); vertical text reads bottom to top from (x, y).
  void text(int x, int y, const std::string& text, Rgb colour, bool vertical = false) {
    std::string copy = printable(text);
    if (copy.empty()) return;
    std::vector<char> buffer(copy.size() * 1200);
    const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buffer.data(),
                                          static_cast<int>(buffer.size()));
    for (int q = 0; q < quads; ++q) {
      // Four vertices of 16 bytes (x, y, z as floats, then the colour); 0 and 2 are opposite.
      const auto corner = [&](std::size_t vertex, std::size_t axis) {
        float value;
        const std::size_t at = static_cast<std::size_t>(q) * 64 + vertex * 16 + axis * 4;
        std::copy_n(&buffer[at], sizeof value, reinterpret_cast<char*>(&value));
        return static_cast<int>(std::lround(value * kTextScale));
      };
      const int u0 = corner(0, 0), v0 = corner(0, 1), u1 = corner(2, 0), v1 = corner(2, 1);
      if (vertical) {
        fill(x + v0, y - u1, x + v1, y - u0, colour);
      } else {
        fill(x + u0, y + v0, x + u1, y + v1, colour);
      }
    }
  }

 private:
  RgbImage m_image;
  std::array<int, 4> m_clip{};
};

// A value axis: its range, its ticks, and where a value falls on it (0 at lo, 1 at hi).
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  int decimals = 0;

  double fraction(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
               : (v - lo) / (hi - lo);
  }
  std::string label(double v) const {
    char text[32];
    if (log || std::abs(v) >= 1e6 || (v != 0 && std::abs(v) < 1e-4)) {
      std::snprintf(text, sizeof text, "%g", v);
    } else {
      std::snprintf(text, sizeof text, "%.*f", decimals, v);
    }
    return text;
  }
};

double niceStep(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * magnitude;
}

// Nice round bounds around [lo, hi] (NaN when there was no data), padded when they are equal.
Axis makeAxis(double lo, double hi, bool log, int targetTicks) {
  Axis axis;
  axis.log = log;
  if (!std::isfinite(hi - lo)) {  // no data, or a range beyond doubles
    lo = log ? 0.1 : 0;
    hi = 1;
  }
  if (log) {
    // A decade below the smallest value when it sits on one, so its bar does not vanish.
    const int a = static_cast<int>(std::floor(std::log10(lo) - 0.15));
    const int b = std::max(a + 1, static_cast<int>(std::ceil(std::log10(hi))));
    const int every = std::max(1, (b - a + targetTicks - 1) / targetTicks);
    axis.lo = std::pow(10.0, a), axis.hi = std::pow(10.0, b);
    for (int e = a; e <= b; e += every) axis.ticks.push_back(std::pow(10.0, e));
    return axis;
  }
  if (hi - lo <= std::abs(hi) * 1e-9) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double step = niceStep((hi - lo) / std::max(targetTicks - 1, 1));
  axis.lo = std::floor(lo / step + 1e-9) * step;
  axis.hi = std::ceil(hi / step - 1e-9) * step;
  if (axis.hi <= axis.lo) axis.hi = axis.lo + step;
  axis.decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 6);
  const auto count = std::lround((axis.hi - axis.lo) / step);
  for (long i = 0; i <= count; ++i) {
    const double t = axis.lo + static_cast<double>(i) * step;
    axis.ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  }
  return axis;
}

int maxLabelWidth(const Axis& axis) {
  int width = 0;
  for (double t : axis.ticks) width = std::max(width, textWidth(axis.label(t)));
  return width;
}

// As many ticks as fit along `length` pixels without labels touching.
Axis fittingAxis(double lo, double hi, bool log, int length, bool labelsAlong) {
  Axis axis;
  for (int target : {8, 6, 5, 4, 3, 2}) {
    axis = makeAxis(lo, hi, log, target);
    const int each = labelsAlong ? maxLabelWidth(axis) + 16 : kLineHeight + 8;
    if (static_cast<int>(axis.ticks.size()) * each <= length) break;
  }
  return axis;
}

struct LegendEntry {
  std::string name;
  Rgb colour;
  enum class Swatch { Line, Box, Tick } swatch;
};

// Draws the legend as rows (wrapping at the right edge) from `top`; returns its height.
int legend(Canvas& canvas, const std::vector<LegendEntry>& entries, int width, int top) {
  if (entries.empty()) return 0;
  int x = 20, y = top;
  for (const auto& entry : entries) {
    const int w = 28 + textWidth(entry.name) + 24;
    if (x + w > width - 10 && x > 20) x = 20, y += kLineHeight;
    const int mid = y + kCapHeight / 2;
    switch (entry.swatch) {
      case LegendEntry::Swatch::Line:
        canvas.line(x, mid, x + 20, mid, entry.colour);
        break;
      case LegendEntry::Swatch::Box:
        canvas.fill(x, mid - 6, x + 20, mid + 6, entry.colour);
        break;
      case LegendEntry::Swatch::Tick:
        canvas.fill(x + 9, mid - 8, x + 12, mid + 9, entry.colour);
        break;
    }
    canvas.text(x + 28, y, entry.name, kInk);
    x += w;
  }
  return y - top + kLineHeight;
}

// Title and legend; returns the top of the plot area.
int header(Canvas& canvas, const std::string& title, const std::vector<LegendEntry>& entries,
           int width) {
  int y = 12;
  if (!title.empty()) {
    canvas.text((width - textWidth(title)) / 2, y, title, kInk);
    canvas.text((width - textWidth(title)) / 2 + 1, y, title, kInk);  // bold
    y += kLineHeight + 4;
  }
  y += legend(canvas, entries, width, y);
  return y + 8;
}

// Grid lines and tick labels of an axis along the bottom (x) or the left (y) of the plot area.
template <typename Map>
void xTicks(Canvas& canvas, const Axis& axis, Map map, int top, int bottom) {
  for (double t : axis.ticks) {
    const int at = static_cast<int>(std::lround(map(t)));
    const std::string label = axis.label(t);
    canvas.fill(at, top, at + 1, bottom, kGrid);
    canvas.text(at - textWidth(label) / 2, bottom + 8, label, kInk);
  }
}
template <typename Map>
void yTicks(Canvas& canvas, const Axis& axis, Map map, int left, int right) {
  for (double t : axis.ticks) {
    const int at = static_cast<int>(std::lround(map(t)));
    const std::string label = axis.label(t);
    canvas.fill(left, at, right, at + 1, kGrid);
    canvas.text(left - 8 - textWidth(label), at - kCapHeight / 2, label, kInk);
  }
}

// The frame, and the axis titles centred below it and (reading upwards) left of it.
void frame(Canvas& canvas, const std::string& xLabel, const std::string& yLabel, int left, int top,
           int right, int bottom) {
  canvas.frame(left, top, right + 1, bottom + 1, kAxis);
  const int y = bottom + 12 + kLineHeight;
  if (!xLabel.empty()) canvas.text((left + right - textWidth(xLabel)) / 2, y, xLabel, kInk);
  if (!yLabel.empty()) canvas.text(12, (top + bottom + textWidth(yLabel)) / 2, yLabel, kInk, true);
}

void noData(Canvas& canvas, int x0, int y0, int x1, int y1) {
  const std::string text = "no data";
  canvas.text((x0 + x1 - textWidth(text)) / 2, (y0 + y1 - kCapHeight) / 2, text, kAxis);
}

}  // namespace

Rgb plotPalette(std::size_t index) {
  static const Rgb kPalette[] = {{0, 114, 178}, {213, 94, 0},   {0, 158, 115},   {204, 121, 167},
                                 {230, 159, 0}, {86, 180, 233}, {120, 120, 120}, {240, 228, 66}};
  return kPalette[index % 8];
}

RgbImage renderLineChart(const LineChart& chart) {
  Canvas canvas(chart.width, chart.height);
  const int width = std::max(chart.width, 1), height = std::max(chart.height, 1);
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  double xLo = kNaN, xHi = kNaN, yLo = kNaN, yHi = kNaN;
  std::vector<LegendEntry> entries;
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const auto& series = chart.series[s];
    entries.push_back({series.name, series.colour.value_or(plotPalette(s)),
                       series.line ? LegendEntry::Swatch::Line : LegendEntry::Swatch::Box});
    for (std::size_t i = 0; i < std::min(series.x.size(), series.y.size()); ++i) {
      if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) continue;
      // fmin/fmax ignore the NaN they start from.
      xLo = std::fmin(xLo, series.x[i]), xHi = std::fmax(xHi, series.x[i]);
      yLo = std::fmin(yLo, series.y[i]), yHi = std::fmax(yHi, series.y[i]);
    }
  }
  const int top = header(canvas, chart.title, entries, width);
  const int bottom = height - 12 - kLineHeight - (chart.xLabel.empty() ? 0 : kLineHeight + 4);
  const Axis y = fittingAxis(yLo, yHi, false, bottom - top, false);
  const int left = 12 + (chart.yLabel.empty() ? 0 : kLineHeight + 4) + maxLabelWidth(y) + 10;
  int right = width - 24;
  const Axis x = fittingAxis(xLo, xHi, false, right - left, true);
  right =
      std::min(right, width - 8 - textWidth(x.label(x.ticks.back())) / 2);  // the last label fits
  // Points stay clear of the frame: the axes map onto an area inset by a few pixels.
  constexpr int kInset = 8;
  const auto px = [&](double v) {
    return left + kInset + x.fraction(v) * (right - left - 2 * kInset);
  };
  const auto py = [&](double v) {
    return bottom - kInset - y.fraction(v) * (bottom - top - 2 * kInset);
  };

  yTicks(canvas, y, py, left, right);
  xTicks(canvas, x, px, top, bottom);
  frame(canvas, chart.xLabel, chart.yLabel, left, top, right, bottom);
  if (std::isnan(xLo)) noData(canvas, left, top, right, bottom);

  canvas.clip(left, top, right + 1, bottom + 1);
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const auto& series = chart.series[s];
    const Rgb colour = series.colour.value_or(plotPalette(s));
    const std::size_t n = std::min(series.x.size(), series.y.size());
    const bool markers = !series.line || n <= 40;
    bool previous = false;  // a drawable previous point: NaN breaks the line
    for (std::size_t i = 0; i < n; ++i) {
      const bool ok = std::isfinite(series.x[i]) && std::isfinite(series.y[i]);
      if (ok && previous && series.line) {
        canvas.line(px(series.x[i - 1]), py(series.y[i - 1]), px(series.x[i]), py(series.y[i]),
                    colour);
      }
      if (ok && markers) {
        const int cx = static_cast<int>(std::lround(px(series.x[i])));
        const int cy = static_cast<int>(std::lround(py(series.y[i])));
        const int r = series.line ? 3 : 5;
        canvas.fill(cx - r, cy - r, cx + r + 1, cy + r + 1, colour);
      }
      previous = ok;
    }
  }
  return canvas.take();
}

RgbImage renderBarChart(const BarChart& chart) {
  Canvas canvas(chart.width, chart.height);
  const int width = std::max(chart.width, 1), height = std::max(chart.height, 1);
  const Rgb colour = chart.colour.value_or(plotPalette(0));
  const std::size_t n = std::min(chart.names.size(), chart.values.size());
  const auto markerAt = [&](std::size_t i) {
    return i < chart.markers.size() ? chart.markers[i] : std::numeric_limits<double>::quiet_NaN();
  };
  const auto errorAt = [&](std::size_t i) {
    const double e = i < chart.errors.size() ? chart.errors[i] : 0.0;
    return std::isfinite(e) && e > 0 ? e : 0.0;
  };
  const auto usable = [&](double v) { return std::isfinite(v) && (!chart.logScale || v > 0); };
  double lo = std::numeric_limits<double>::quiet_NaN(), hi = lo;
  bool anyMarker = false;
  for (std::size_t i = 0; i < n; ++i) {
    const double e = usable(chart.values[i]) ? errorAt(i) : 0.0;
    for (double v : {chart.values[i], markerAt(i), chart.values[i] + e, chart.values[i] - e}) {
      if (usable(v)) lo = std::fmin(lo, v), hi = std::fmax(hi, v);
    }
    anyMarker = anyMarker || usable(markerAt(i));
  }
  if (!chart.logScale && std::isfinite(lo)) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);

  std::vector<LegendEntry> entries;
  if (!chart.valueName.empty()) {
    entries.push_back({chart.valueName, colour, LegendEntry::Swatch::Box});
  }
  if (anyMarker) entries.push_back({chart.markerName, kInk, LegendEntry::Swatch::Tick});
  const int top = header(canvas, chart.title, entries, width);
  const int labelLine = chart.valueLabel.empty() ? 0 : kLineHeight + 4;
  int left, right = width - 24, bottom;
  Axis axis;
  if (chart.horizontal) {
    int names = 0;
    for (std::size_t i = 0; i < n; ++i) names = std::max(names, textWidth(chart.names[i]));
    left = 12 + std::min(names, width * 2 / 5) + 10;
    bottom = height - 12 - kLineHeight - labelLine;
    axis = fittingAxis(lo, hi, chart.logScale, right - left, true);
    right = std::min(right, width - 8 - textWidth(axis.label(axis.ticks.back())) / 2);
  } else {
    bottom = height - 12 - kLineHeight - 8;
    axis = fittingAxis(lo, hi, chart.logScale, bottom - top, false);
    left = 12 + labelLine + maxLabelWidth(axis) + 10;
  }
  // Value positions run along x for horizontal bars and up y for vertical ones.
  const auto along = [&](double v) {
    const double f = std::clamp(axis.fraction(v), 0.0, 1.0);
    return chart.horizontal ? left + f * (right - left) : bottom - f * (bottom - top);
  };
  if (chart.horizontal) {
    xTicks(canvas, axis, along, top, bottom);
    frame(canvas, chart.valueLabel, "", left, top, right, bottom);
  } else {
    yTicks(canvas, axis, along, left, right);
    frame(canvas, "", chart.valueLabel, left, top, right, bottom);
  }
  if (n == 0 || std::isnan(lo)) noData(canvas, left, top, right, bottom);

  const double band =
      n ? (chart.horizontal ? bottom - top : right - left) / static_cast<double>(n) : 0;
  const double thickness = std::min(band * 0.7, 48.0);
  const double base = along(axis.log ? axis.lo : 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double centre = (chart.horizontal ? top : left) + band * (i + 0.5);
    const int c0 = static_cast<int>(std::lround(centre - thickness / 2));
    const int c1 = std::max(c0 + 1, static_cast<int>(std::lround(centre + thickness / 2)));
    if (usable(chart.values[i])) {
      const Rgb fill = i < chart.barColours.size() ? chart.barColours[i] : colour;
      const int a = static_cast<int>(std::lround(std::min(base, along(chart.values[i]))));
      const int b = static_cast<int>(std::lround(std::max(base, along(chart.values[i]))));
      if (chart.horizontal) {
        canvas.fill(a, c0, b + 1, c1, fill);
      } else {
        canvas.fill(c0, a, c1, b + 1, fill);
      }
      if (const double e = errorAt(i); e > 0) {
        // A whisker with end caps, in grey so it stays visible on the bar and off it.
        const Rgb grey{90, 90, 90};
        const double v = chart.values[i];
        const double from = usable(v - e) ? v - e : (axis.log ? axis.lo : v - e);
        const int p0 = static_cast<int>(std::lround(std::min(along(from), along(v + e))));
        const int p1 = static_cast<int>(std::lround(std::max(along(from), along(v + e))));
        const int mid = static_cast<int>(std::lround(centre));
        const int cap = static_cast<int>(std::lround(std::max(3.0, thickness / 5)));
        if (chart.horizontal) {
          canvas.fill(p0, mid, p1 + 1, mid + 1, grey);
          canvas.fill(p0, mid - cap, p0 + 1, mid + cap + 1, grey);
          canvas.fill(p1, mid - cap, p1 + 1, mid + cap + 1, grey);
        } else {
          canvas.fill(mid, p0, mid + 1, p1 + 1, grey);
          canvas.fill(mid - cap, p0, mid + cap + 1, p0 + 1, grey);
          canvas.fill(mid - cap, p1, mid + cap + 1, p1 + 1, grey);
        }
      }
    }
    if (usable(markerAt(i))) {
      const int m = static_cast<int>(std::lround(along(markerAt(i))));
      const int reach = static_cast<int>(std::lround(std::min(band * 0.45, thickness / 2 + 6)));
      const int mid = static_cast<int>(std::lround(centre));
      if (chart.horizontal) {
        canvas.fill(m - 1, mid - reach, m + 2, mid + reach + 1, kInk);
      } else {
        canvas.fill(mid - reach, m - 1, mid + reach + 1, m + 2, kInk);
      }
    }
    if (chart.horizontal) {
      const std::string name = fitText(chart.names[i], left - 22);
      canvas.text(left - 10 - textWidth(name), static_cast<int>(centre) - kCapHeight / 2, name,
                  kInk);
    } else {
      const std::string name = fitText(chart.names[i], static_cast<int>(band) - 4);
      canvas.text(static_cast<int>(centre) - textWidth(name) / 2, bottom + 8, name, kInk);
    }
  }
  return canvas.take();
}

RgbImage stackImages(const std::vector<RgbImage>& images) {
  RgbImage out;
  for (const auto& image : images) {
    out.width = std::max(out.width, image.width);
    out.height += image.height;
  }
  out.pixels.assign(static_cast<std::size_t>(out.width) * out.height * 3, 255);
  int y0 = 0;
  for (const auto& image : images) {
    const int x0 = (out.width - image.width) / 2;
    for (int y = 0; y < image.height; ++y) {
      std::copy_n(&image.pixels[static_cast<std::size_t>(y) * image.width * 3], image.width * 3,
                  &out.pixels[(static_cast<std::size_t>(y0 + y) * out.width + x0) * 3]);
    }
    y0 += image.height;
  }
  return out;
}

std::string encodePng(const RgbImage& image) {
  std::string bytes;
  if (image.width <= 0 || image.height <= 0) return bytes;
  stbi_write_png_to_func(
      [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<char*>(data),
                                                   static_cast<std::size_t>(size));
      },
      &bytes, image.width, image.height, 3, image.pixels.data(), image.width * 3);
  return bytes;
}

std::string writePng(const RgbImage& image, const std::filesystem::path& file) {
  const std::string bytes = encodePng(image);
  if (bytes.empty()) return "cannot encode " + file.string() + ": the image is empty";
  return writeFileAtomically(file, bytes);
}

}  // namespace scalpel
