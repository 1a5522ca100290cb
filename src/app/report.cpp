// The text report of a result: the job's settings, the tasks, R(i|j) with its errors, the
// fine-tune costs, whether R predicts them, the experiments' fits and the jobs' outcomes.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace taskreach {
namespace {

// Terminal columns of a UTF-8 string (one per code point; enough for names and "±").
size_t columns(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

std::string clip(const std::string& s, size_t width) {
  if (columns(s) <= width) return s;
  std::string out;
  size_t cols = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto ch = static_cast<unsigned char>(s[i]);
    if ((ch & 0xC0) != 0x80 && ++cols == width) break;
    out += s[i];
  }
  return out + "…";
}

std::string pad(const std::string& s, size_t width, bool right = false) {
  const size_t cols = columns(s);
  const std::string fill(width > cols ? width - cols : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string num(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string attribute_text(const RunOutput& out, const std::string& key, bool* found) {
  *found = true;
  if (auto it = out.attrs_str.find(key); it != out.attrs_str.end()) {
    const std::string& s = it->second;
    return s.substr(0, s.find('\n'));
  }
  if (auto it = out.attrs_i64.find(key); it != out.attrs_i64.end()) return std::to_string(it->second);
  if (auto it = out.attrs_f64.find(key); it != out.attrs_f64.end()) return num(it->second, 6);
  *found = false;
  return {};
}

constexpr size_t kNameWidth = 20;

}  // namespace

std::string format_info(const RunOutput& out) {
  std::ostringstream os;
  const size_t n = out.task_names.size();
  std::vector<std::string> names;
  size_t name_width = 4;
  for (const auto& t : out.task_names) {
    names.push_back(clip(t, kNameWidth));
    name_width = std::max(name_width, columns(names.back()));
  }
  auto at = [](const auto& v, size_t i) { return i < v.size() ? v[i] : typename std::decay_t<decltype(v)>::value_type{}; };
  auto cell = [](const auto& m, size_t i, size_t j, bool* ok) {
    *ok = m.rows > static_cast<int64_t>(i) && m.cols > static_cast<int64_t>(j) &&
          m.data.size() == static_cast<size_t>(m.rows * m.cols);
    return *ok ? m(static_cast<int64_t>(i), static_cast<int64_t>(j)) : 0.0;
  };

  os << "taskreach result\n";
  for (const char* key : {"version", "created", "mpi_ranks", "ranks_per_task", "beta", "lambda2",
                          "logdet_scale", "curvature", "seeds"}) {
    bool found = false;
    const std::string text = attribute_text(out, key, &found);
    if (found) os << "  " << pad(key, 16) << text << "\n";
  }

  if (n == 0) {  // an experiment without a task matrix: its fits follow
    bool found = false;
    os << "\nexperiment " << attribute_text(out, "experiment", &found) << "\n";
  } else {
    os << "\ntasks (" << n << ")\n";
    os << "  " << pad("#", 4) << pad("task", name_width + 2) << pad("n", 10, true) << pad("classes", 9, true)
       << "   C ± stderr (nats)\n";
    for (size_t i = 0; i < n; ++i) {
      os << "  " << pad(std::to_string(i), 4) << pad(names[i], name_width + 2)
         << pad(std::to_string(at(out.num_samples, i)), 10, true)
         << pad(std::to_string(at(out.num_classes, i)), 9, true) << "   "
         << num(at(out.C, i), 6) << " ± " << num(at(out.logdet_stderr, i), 2) << "\n";
    }

    // Cells first, then each column as wide as its widest entry.
    std::vector<std::vector<std::string>> cells(n, std::vector<std::string>(n));
    std::vector<size_t> width(n);
    for (size_t j = 0; j < n; ++j) width[j] = columns(names[j]);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        bool ok = false, have_err = false;
        const double r = cell(out.R, i, j, &ok);
        const double e = cell(out.stderr_total, i, j, &have_err);
        cells[i][j] = !ok ? "-" : have_err ? num(r, 4) + " ± " + num(e, 2) : num(r, 4);
        width[j] = std::max(width[j], columns(cells[i][j]));
      }
    }
    const std::string corner = "target \\ source";
    const size_t row_width = std::max(name_width, columns(corner));
    os << "\nR(i|j): row i = target, column j = source, nats\n";
    os << "  " << pad(corner, row_width);
    for (size_t j = 0; j < n; ++j) os << "  " << pad(names[j], width[j], true);
    os << "\n";
    for (size_t i = 0; i < n; ++i) {
      os << "  " << pad(names[i], row_width);
      for (size_t j = 0; j < n; ++j) os << "  " << pad(cells[i][j], width[j], true);
      os << "\n";
    }

    if (out.finetune_threshold.size() == n && out.finetune_steps.data.size() == n * n && n > 0) {
      os << "\nT(i|j): SGD steps fine-tuning from source j until task i's loss <= theta_i "
            "(diagonal: from scratch; - : not reached)\n";
      os << "  " << pad(corner, row_width);
      std::vector<size_t> tw(n);
      for (size_t j = 0; j < n; ++j) {
        tw[j] = std::max<size_t>(columns(names[j]), 8);
        os << "  " << pad(names[j], tw[j], true);
      }
      os << "  " << pad("theta_i", 8, true) << "\n";
      for (size_t i = 0; i < n; ++i) {
        os << "  " << pad(names[i], row_width);
        for (size_t j = 0; j < n; ++j) {
          const int64_t t = out.finetune_steps(int64_t(i), int64_t(j));
          os << "  " << pad(t < 0 ? std::string("-") : std::to_string(t), tw[j], true);
        }
        std::ostringstream th;
        th << std::setprecision(3) << out.finetune_threshold[i];
        os << "  " << pad(th.str(), 8, true) << "\n";
      }
    }
  }  // n > 0

  if (out.analysis.count("spearman_R_T")) {
    auto v = [&](const std::string& k) {
      std::ostringstream o;
      auto it = out.analysis.find(k);
      o << std::setprecision(3) << (it == out.analysis.end() ? NAN : it->second);
      return o.str();
    };
    const auto pairs = out.analysis_i64.count("pairs_used") ? out.analysis_i64.at("pairs_used") : 0;
    os << "\ndoes R predict the fine-tune cost? (" << pairs << " resolved, reached pairs)\n"
       << "  Spearman(R, T) " << v("spearman_R_T") << ", Pearson(R, log(1+T)) " << v("pearson_R_logT")
       << ", within-target Kendall " << v("kendall_within_target") << "\n"
       << "  baselines, Spearman with T: target's scratch cost " << v("baselines/scratch_cost/spearman_T")
       << ", loss of i at w*_j " << v("baselines/loss_at_source/spearman_T") << ", C(D_i) "
       << v("baselines/target_complexity/spearman_T") << "\n"
       << "  partial Spearman(R, T | scratch cost) " << v("partial_spearman_R_T_given_scratch") << "\n";
  }

  // The experiments' fits: every group with a formula, its parameters ± errors and R².
  bool fits_header = false;
  for (const auto& [group, attrs] : out.extra_attrs) {
    auto model = attrs.find("model");
    auto p = out.extra.find(group + "/params"), e = out.extra.find(group + "/stderr"), r2 = out.extra.find(group + "/r2");
    if (model == attrs.end() || p == out.extra.end()) continue;
    if (!fits_header) os << "\nfits (least squares)\n";
    fits_header = true;
    std::vector<std::string> pn;
    if (auto it = attrs.find("param_names"); it != attrs.end()) {
      std::istringstream in(it->second);
      for (std::string x; std::getline(in, x, ',');) pn.push_back(x);
    }
    os << "  " << group << ": " << model->second << "\n    ";
    for (size_t k = 0; k < p->second.size(); ++k)
      os << (k < pn.size() ? pn[k] : "p" + std::to_string(k)) << " = " << num(p->second[k], 4) << " ± "
         << num(e != out.extra.end() && k < e->second.size() ? e->second[k] : NAN, 2) << "   ";
    os << "R^2 = " << num(r2 != out.extra.end() && !r2->second.empty() ? r2->second[0] : NAN, 3) << "\n";
  }

  std::map<std::string, size_t> statuses;
  for (const auto& j : out.jobs) ++statuses[j.status];
  os << "\njobs: " << out.jobs.size();
  if (!out.jobs.empty()) {
    os << " (ok " << statuses["ok"];
    for (const auto& [status, count] : statuses) {
      if (status != "ok") os << ", " << status << " " << count;
    }
    os << ")";
  }
  os << "\n";
  return os.str();
}

}  // namespace taskreach
