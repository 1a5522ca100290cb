// The text report of a result: the job's settings, the tasks, R(i|j) with its errors, the
// fine-tune costs, whether R predicts them, the experiments' fits and the jobs' outcomes.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

double at_or_nan(const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : NAN; }

constexpr const char* kMarkLegend =
    "marks: * resolved (|R| > t*stderr), ! R < -t*stderr (optimisation failure), x left out "
    "(a flagged job or q), e fewer eigenpairs converged, u unstable theta_i, q the difference's m/2 "
    "quadrature check failed, even after its jobs' paired rerun";

std::string flag_marks(const RunOutput& out, size_t i, size_t j) {
  if (out.flags.data.size() != out.task_names.size() * out.task_names.size()) return "";
  const int64_t f = out.flags(int64_t(i), int64_t(j));
  std::string m;
  if (f & reach_flag::resolved) m += "*";
  if (f & reach_flag::negative) m += "!";
  if (f & reach_flag::excluded) m += "x";
  if (f & reach_flag::eps_not_converged) m += "e";
  if (f & reach_flag::unstable_target) m += "u";
  if (f & reach_flag::quadrature) m += "q";
  return m.empty() ? m : " " + m;
}

// What the flags mean for this run, in sentences: unknown seed errors, the jobs and θ_i left
// out of the analysis and why, and the entries that are optimisation failures.
std::string judgement(const RunOutput& out, const std::vector<std::string>& names) {
  std::ostringstream os;
  const size_t n = out.task_names.size();
  if (out.flags.data.size() != n * n) return "";
  bool unknown = false;
  std::vector<std::string> negative;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const int64_t f = out.flags(int64_t(i), int64_t(j));
      unknown = unknown || (f & reach_flag::seed_error_unknown);
      if (f & reach_flag::negative)
        negative.push_back(names[i] + " <- " + names[j] + " (" + num(out.R(int64_t(i), int64_t(j)), 4) + " ± " +
                           num(out.stderr_total(int64_t(i), int64_t(j)), 2) + ")");
    }
  if (unknown)
    os << "  seed error unknown: one seed, so stderr_seed and stderr are NaN and no entry is judged resolved; "
          "run with seeds >= 2\n";
  else
    os << "  resolved means |R| > t*stderr, t the Student-t critical value of the 3-sigma level at the error's "
          "Welch-Satterthwaite degrees of freedom (probes - 1 and seeds - 1)\n";
  for (const auto& j : out.jobs) {
    if (j.name.rfind("single:", 0) != 0 && j.name.rfind("union:", 0) != 0) continue;
    // The status is "ok" or flags joined by '+'; eps_not_converged alone keeps a job in.
    std::istringstream flags(j.status);
    bool left_out = false;
    for (std::string f; std::getline(flags, f, '+');)
      left_out = left_out || f == "diverged" || f == "not_converged" || f == "quadrature_unconverged";
    if (left_out) os << "  left out of the analysis: " << j.name << " (" << j.status << ")\n";
  }
  if (out.finetune_unstable.size() == n)
    for (size_t i = 0; i < n; ++i)
      if (out.finetune_unstable[i])
        os << "  left out of the analysis: T(" << names[i] << "|.): theta_i unstable, its scratch run's last "
           << "evaluations spread " << num(at_or_nan(out.finetune_threshold_spread, i), 3) << " nats, more than the margin\n";
  for (const auto& e : negative) os << "  optimisation failure (R < -t*stderr): " << e << "\n";
  return os.str();
}

// One sentence: does R add to the target's scratch cost in cross-validated prediction of T?
std::string prediction_sentence(const RunOutput& out) {
  const std::string g = "prediction/";
  auto f = [&](const std::string& k) {
    auto it = out.analysis.find(g + k);
    return it == out.analysis.end() ? NAN : it->second;
  };
  auto i = [&](const std::string& k) {
    auto it = out.analysis_i64.find(g + k);
    return it == out.analysis_i64.end() ? int64_t(-1) : it->second;
  };
  if (i("pairs") < 0) return "";
  auto ci = [&](const std::string& k) {
    return num(f(k), 3) + " [" + num(f(k + "_lo"), 3) + ", " + num(f(k + "_hi"), 3) + "]";
  };
  std::ostringstream os;
  const bool adds = i("R_gain_over_scratch_cost/adds") == 1;
  if (std::isnan(f("R_gain_over_scratch_cost/rmse_logT"))) {
    os << "  whether R adds to the target's scratch cost cannot be judged: too few targets or pairs ("
       << i("targets") << " targets, " << i("pairs") << " pairs) for a leave-one-target-out fit\n";
    return os.str();
  }
  os << "  R " << (adds ? "adds" : "does not add") << " to the target's scratch cost: leave-one-target-out "
     << "Spearman(predicted, log(1+T)) " << ci("scratch_cost_R/spearman_logT") << " with R against "
     << ci("scratch_cost/spearman_logT") << " without (R alone " << ci("R/spearman_logT")
     << "); RMS error of log(1+T) falls by " << ci("R_gain_over_scratch_cost/rmse_logT") << " (95% bootstrap over "
     << i("targets") << " targets, " << i("pairs") << " pairs)\n";
  if (std::isnan(f("R_gain_over_baselines/rmse_logT")))
    os << "  with every baseline: cannot be judged (a leave-one-target-out fold of 4 parameters could not be "
          "fitted on the other targets' pairs; more targets needed)\n";
  else
    os << "  with every baseline: R " << (i("R_gain_over_baselines/adds") == 1 ? "adds" : "does not add")
       << ", RMS error falls by " << ci("R_gain_over_baselines/rmse_logT") << "\n";
  return os.str();
}

// Where the measurement jobs' time went (their time_* figures, /jobs/metrics): SGD, the
// polish, the top-k eigensolver, SLQ, with each part's share. Empty when no job has them.
std::string time_split(const RunOutput& out) {
  static const char* kParts[] = {"time_sgd", "time_polish", "time_topk", "time_slq"};
  static const char* kNames[] = {"SGD", "polish", "top-k", "SLQ"};
  static const char* kCounts[] = {"polish_passes", "curvature_passes", "hvp"};
  double total[4] = {0, 0, 0, 0}, counts[3] = {0, 0, 0};
  size_t jobs = 0;
  for (const auto& j : out.jobs) {
    bool any = false;
    for (int p = 0; p < 4; ++p)
      if (auto f = j.metrics.find(kParts[p]); f != j.metrics.end()) {
        total[p] += f->second;
        any = true;
      }
    for (int p = 0; p < 3; ++p)
      if (auto f = j.metrics.find(kCounts[p]); f != j.metrics.end()) counts[p] += f->second;
    jobs += any;
  }
  const double sum = total[0] + total[1] + total[2] + total[3];
  if (jobs == 0 || !(sum > 0)) return "";
  std::ostringstream os;
  os << "\ntime of the " << jobs << " trainings and curvature solves: " << num(sum, 4) << " s:";
  for (int p = 0; p < 4; ++p)
    os << (p ? ", " : " ") << kNames[p] << " " << num(total[p], 4) << " s (" << num(100.0 * total[p] / sum, 3) << "%)";
  os << "\n";
  if (counts[0] + counts[1] > 0)
    os << "data passes per job: polish " << num(counts[0] / double(jobs), 4) << ", curvature " << num(counts[1] / double(jobs), 4)
       << " (block products; " << num(counts[2] / double(jobs), 4) << " operator-vector products)\n";
  return os.str();
}

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
       << "   C ± stderr (nats)    status\n";
    for (size_t i = 0; i < n; ++i) {
      const double se = out.C_stderr.size() == n ? out.C_stderr[i] : NAN;
      const std::string c = num(at(out.C, i), 6) + " ± " + (std::isnan(se) ? std::string("?") : num(se, 2));
      os << "  " << pad(std::to_string(i), 4) << pad(names[i], name_width + 2)
         << pad(std::to_string(at(out.num_samples, i)), 10, true)
         << pad(std::to_string(at(out.num_classes, i)), 9, true) << "   " << pad(c, 20) << " "
         << (out.task_status.size() == n ? out.task_status[i] : std::string("?")) << "\n";
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
        cells[i][j] = !ok ? "-" : have_err ? num(r, 4) + " ± " + (std::isnan(e) && !std::isnan(r) ? "?" : num(e, 2)) : num(r, 4);
        cells[i][j] += flag_marks(out, i, j);
        width[j] = std::max(width[j], columns(cells[i][j]));
      }
    }
    const std::string corner = "target \\ source";
    const size_t row_width = std::max(name_width, columns(corner));
    os << "\nR(i|j): row i = target, column j = source, nats; " << kMarkLegend << "\n";
    os << "  " << pad(corner, row_width);
    for (size_t j = 0; j < n; ++j) os << "  " << pad(names[j], width[j], true);
    os << "\n";
    for (size_t i = 0; i < n; ++i) {
      os << "  " << pad(names[i], row_width);
      for (size_t j = 0; j < n; ++j) os << "  " << pad(cells[i][j], width[j], true);
      os << "\n";
    }
    const std::string judged = judgement(out, names);
    if (!judged.empty()) os << "\n" << judged;

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
    auto count = [&](const std::string& k) {
      return out.analysis_i64.count(k) ? std::to_string(out.analysis_i64.at(k)) : std::string("?");
    };
    if (out.analysis_i64.count("pairs_excluded"))
      os << "  left out: " << count("pairs_excluded") << " pairs with a flagged job, " << count("pairs_unstable_target")
         << " with an unstable theta_i, " << count("pairs_unresolved") << " unresolved (|R| <= t*stderr)\n";
    os << prediction_sentence(out);
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

  os << time_split(out);
  if (auto it = out.attrs_i64.find("paired_reruns"); it != out.attrs_i64.end() && it->second > 0)
    os << "paired reruns: " << it->second
       << " job(s) measured again at twice the Lanczos steps, where a paired R difference failed its m/2 check "
          "(records: paired_rerun=1)\n";
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
