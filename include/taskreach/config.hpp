#pragma once
// Job file (TOML) → validated configuration. Every error names the file and the field.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace taskreach {

// A bad job file or bad input data: one line, "FILE: FIELD: what was expected".
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SourceConfig {
  std::string name;
  std::string format;  // "idx"
  std::string train_images, train_labels;  // paths after ${VAR} expansion
  std::string test_images, test_labels;    // optional
  std::string label_space;                 // defaults to the source name
};

struct TransformConfig {
  std::string type;                 // class_subset | invert | blur | subsample
  std::vector<int64_t> classes;     // class_subset
  double sigma = 0.0;               // blur, in pixels
  int64_t n = 0;                    // subsample
};

struct TaskConfig {
  std::string name;
  std::string source;
  std::vector<TransformConfig> transforms;
};

struct ModelConfig {
  std::string arch = "mlp";          // linear | mlp
  std::vector<int64_t> hidden{32};   // mlp widths
};

struct TrainConfig {
  int64_t epochs = 20;
  int64_t batch_size = 64;
  double lr = 0.05;
  double momentum = 0.9;
  bool weight_decay_auto = true;  // γ_D = β/(λ² n_D)
  double weight_decay = 0.0;      // used when !weight_decay_auto
  std::string dtype = "float32";  // SGD precision; the polish and curvature are float64
  double grad_tol = 1e-5;         // ‖∇(L_D + β/(2λ²)‖w‖²)‖ / n
  int64_t polish_iters = 500;     // L-BFGS iterations at most
  int64_t seeds = 1;
};

struct ComplexityConfig {
  double beta = 1.0;
  double lambda2 = 1.0;
  std::string logdet_scale = "laplace";  // laplace: c = λ²/β; paper: c = 2λ²/β
  std::string curvature = "ggn";         // ggn | hessian
  int64_t top_k = 10;
  int64_t probes = 16;
  int64_t lanczos_steps = 30;
  int64_t batch_size = 256;  // samples per curvature-product batch
  double eps_tol = 1e-10;
};

struct JobConfig {
  std::string path;      // the job file
  std::string text;      // verbatim TOML, stored in the output
  std::string name;
  uint64_t seed = 1;
  int64_t ranks_per_task = 1;
  int64_t n_per_task = 0;  // 0: no cap
  std::vector<SourceConfig> sources;
  std::vector<TaskConfig> tasks;
  ModelConfig model;
  TrainConfig train;
  ComplexityConfig complexity;

  // c in log det(I + c·G): λ²/β ("laplace") or 2λ²/β ("paper", the seed's eq. 3).
  double logdet_c() const;
};

// Parses and validates; throws InputError.
JobConfig load_job(const std::string& path);
JobConfig parse_job(const std::string& text, const std::string& path);

// Expands ${NAME} from the environment; throws InputError naming `where` if unset.
std::string expand_env(const std::string& s, const std::string& where);

}  // namespace taskreach
