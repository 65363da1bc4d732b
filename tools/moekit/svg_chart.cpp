#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace moekit_cli {
namespace {

// Distinct colours, dark and light pairs, so that the stream/graph or compile variants of one
// backend sit next to each other in similar hues.
const char* const kPalette[] = {"#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
                                "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2",
                                "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"};

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string tick_text(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3))
    std::snprintf(buf, sizeof buf, "%.0e", v);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

struct Axis {
  bool log = false;
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  // 0 at lo, 1 at hi.
  double frac(double v) const {
    if (log) return (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
    return (v - lo) / (hi - lo);
  }
};

Axis make_axis(const BarChart& c) {
  double mn = INFINITY, mx = -INFINITY;
  for (const BarSeries& s : c.series)
    for (double v : s.values)
      if (std::isfinite(v) && (!c.log_y || v > 0)) {
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
  if (c.reference && (!c.log_y || *c.reference > 0)) {
    mn = std::min(mn, *c.reference);
    mx = std::max(mx, *c.reference);
  }
  Axis a;
  a.log = c.log_y;
  if (!std::isfinite(mn)) {  // no data: an empty frame
    mn = 1;
    mx = 10;
  }
  if (a.log) {
    int d0 = int(std::floor(std::log10(mn))), d1 = int(std::ceil(std::log10(mx)));
    if (d1 <= d0) d1 = d0 + 1;
    a.lo = std::pow(10.0, d0);
    a.hi = std::pow(10.0, d1);
    for (int d = d0; d <= d1; ++d) {
      a.ticks.push_back(std::pow(10.0, d));
      if (d1 - d0 <= 3 && d < d1)
        for (double m : {2.0, 5.0}) a.ticks.push_back(m * std::pow(10.0, d));
    }
    std::sort(a.ticks.begin(), a.ticks.end());
    return a;
  }
  a.lo = std::min(0.0, mn);
  const double span = std::max(mx, 0.0) - a.lo;
  const double raw = (span > 0 ? span : 1.0) / 6;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  a.lo = std::floor(a.lo / step) * step;
  a.hi = std::ceil(std::max(mx, 0.0) * 1.05 / step) * step;
  if (a.hi <= a.lo) a.hi = a.lo + step;
  for (double t = a.lo; t <= a.hi + step / 2; t += step) a.ticks.push_back(std::fabs(t) < step / 1e6 ? 0 : t);
  return a;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t') out += ' ';
        else out += ch;
    }
  }
  return out;
}

std::string render_svg(const BarChart& c) {
  const std::size_t G = std::max<std::size_t>(c.groups.size(), 1), S = std::max<std::size_t>(c.series.size(), 1);
  const double bar_w = S > 12 ? 7 : S > 6 ? 10 : 16;
  const double gap = 14;
  const double group_w = double(S) * bar_w + gap;
  const double plot_w = std::max(520.0, double(G) * group_w);
  const double plot_h = 380;
  const double left = 88, top = 70, bottom = 120;
  const double legend_x = left + plot_w + 24, legend_row = 17;
  const double legend_w = 330;
  const double legend_h = 24 + legend_row * double(c.series.size());
  const double width = legend_x + legend_w;
  const double height = std::max(top + plot_h + bottom, top + legend_h + 10);
  const double base_y = top + plot_h;
  const Axis axis = make_axis(c);
  auto y_of = [&](double v) { return base_y - plot_h * std::clamp(axis.frac(v), 0.0, 1.0); };

  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << num(width) << "\" height=\""
    << num(height) << "\" viewBox=\"0 0 " << num(width) << " " << num(height)
    << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n";
  o << "<title>" << xml_escape(c.title) << "</title>\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text class=\"title\" x=\"" << num(width / 2) << "\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" "
       "font-weight=\"bold\">"
    << xml_escape(c.title) << "</text>\n";
  if (!c.subtitle.empty()) {
    // About 6 px per character at 11 px: cut what would run off the canvas.
    std::string sub = c.subtitle;
    const std::size_t fits = std::size_t(width / 6.2);
    if (sub.size() > fits) {
      std::size_t cut = fits - 3;
      while (cut > 0 && (static_cast<unsigned char>(sub[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
      sub = sub.substr(0, cut) + "...";
    }
    o << "<text class=\"subtitle\" x=\"" << num(width / 2) << "\" y=\"46\" text-anchor=\"middle\" font-size=\"11\" "
         "fill=\"#444\">"
      << xml_escape(sub) << "</text>\n";
  }

  // y axis: gridlines, ticks, labels.
  o << "<g id=\"y-axis\" font-size=\"11\">\n";
  for (double t : axis.ticks) {
    if (axis.log && t <= 0) continue;
    const double y = y_of(t);
    const bool major = !axis.log || std::fabs(std::log10(t) - std::round(std::log10(t))) < 1e-9;
    o << "  <line x1=\"" << num(left) << "\" x2=\"" << num(left + plot_w) << "\" y1=\"" << num(y) << "\" y2=\""
      << num(y) << "\" stroke=\"" << (major ? "#d0d0d0" : "#ececec") << "\"/>\n";
    o << "  <line x1=\"" << num(left - 5) << "\" x2=\"" << num(left) << "\" y1=\"" << num(y) << "\" y2=\"" << num(y)
      << "\" stroke=\"black\"/>\n";
    o << "  <text x=\"" << num(left - 8) << "\" y=\"" << num(y + 4) << "\" text-anchor=\"end\">" << tick_text(t)
      << "</text>\n";
  }
  o << "  <line x1=\"" << num(left) << "\" x2=\"" << num(left) << "\" y1=\"" << num(top) << "\" y2=\"" << num(base_y)
    << "\" stroke=\"black\"/>\n";
  o << "</g>\n";
  o << "<text class=\"axis-label\" transform=\"translate(" << num(22) << "," << num(top + plot_h / 2)
    << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" << xml_escape(c.y_label) << "</text>\n";

  if (c.reference && (!axis.log || *c.reference > 0)) {
    const double y = y_of(*c.reference);
    o << "<line id=\"reference\" x1=\"" << num(left) << "\" x2=\"" << num(left + plot_w) << "\" y1=\"" << num(y)
      << "\" y2=\"" << num(y) << "\" stroke=\"black\" stroke-dasharray=\"6,4\"/>\n";
  }

  // Bars, by group, one per series; a missing value shows its note instead.
  o << "<g id=\"bars\">\n";
  const double inner_w = double(S) * bar_w;
  const double offset = (plot_w - double(G) * group_w) / 2;
  for (std::size_t g = 0; g < c.groups.size(); ++g) {
    const double gx = left + offset + double(g) * group_w + (group_w - inner_w) / 2;
    for (std::size_t s = 0; s < c.series.size(); ++s) {
      const BarSeries& series = c.series[s];
      const double x = gx + double(s) * bar_w;
      const char* colour = kPalette[s % (sizeof kPalette / sizeof kPalette[0])];
      const double v = g < series.values.size() ? series.values[g] : NAN;
      if (std::isfinite(v) && (!axis.log || v > 0)) {
        const double y = y_of(v);
        o << "  <rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(bar_w - 1) << "\" height=\""
          << num(std::max(base_y - y, 0.5)) << "\" fill=\"" << colour << "\"><title>" << xml_escape(series.name)
          << ", " << xml_escape(c.groups[g]) << ": " << tick_text(v) << "</title></rect>\n";
      } else {
        const std::string note = g < series.notes.size() ? series.notes[g] : "";
        if (note.empty()) continue;
        o << "  <text x=\"" << num(x + bar_w / 2 + 3) << "\" y=\"" << num(base_y - 4) << "\" transform=\"rotate(-90 "
          << num(x + bar_w / 2 + 3) << " " << num(base_y - 4) << ")\" font-size=\"8\" fill=\"" << colour << "\">"
          << xml_escape(note) << "</text>\n";
      }
    }
  }
  o << "</g>\n";

  // x axis: the baseline and the group labels, slanted when long.
  std::size_t longest = 0;
  for (const std::string& g : c.groups) longest = std::max(longest, g.size());
  const bool slant = double(longest) * 6.5 > group_w;
  o << "<g id=\"x-axis\" font-size=\"11\">\n";
  o << "  <line x1=\"" << num(left) << "\" x2=\"" << num(left + plot_w) << "\" y1=\"" << num(base_y) << "\" y2=\""
    << num(base_y) << "\" stroke=\"black\"/>\n";
  for (std::size_t g = 0; g < c.groups.size(); ++g) {
    const double cx = left + offset + (double(g) + 0.5) * group_w;
    if (slant)
      o << "  <text x=\"" << num(cx) << "\" y=\"" << num(base_y + 16) << "\" text-anchor=\"end\" transform=\"rotate(-30 "
        << num(cx) << " " << num(base_y + 16) << ")\">" << xml_escape(c.groups[g]) << "</text>\n";
    else
      o << "  <text x=\"" << num(cx) << "\" y=\"" << num(base_y + 18) << "\" text-anchor=\"middle\">"
        << xml_escape(c.groups[g]) << "</text>\n";
  }
  o << "</g>\n";
  o << "<text class=\"axis-label\" x=\"" << num(left + plot_w / 2) << "\" y=\"" << num(height - 16)
    << "\" text-anchor=\"middle\" font-size=\"13\">" << xml_escape(c.x_label) << "</text>\n";

  o << "<g id=\"legend\" font-size=\"11\">\n";
  o << "  <text x=\"" << num(legend_x) << "\" y=\"" << num(top + 4) << "\" font-weight=\"bold\">legend</text>\n";
  for (std::size_t s = 0; s < c.series.size(); ++s) {
    const double y = top + 14 + legend_row * double(s);
    o << "  <rect x=\"" << num(legend_x) << "\" y=\"" << num(y) << "\" width=\"12\" height=\"12\" fill=\""
      << kPalette[s % (sizeof kPalette / sizeof kPalette[0])] << "\"/>\n";
    o << "  <text x=\"" << num(legend_x + 18) << "\" y=\"" << num(y + 10) << "\">" << xml_escape(c.series[s].name)
      << "</text>\n";
  }
  o << "</g>\n";
  o << "</svg>\n";
  return o.str();
}

}  // namespace moekit_cli
