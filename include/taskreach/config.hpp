#pragma once
// Job file (TOML) → validated configuration. Every error names the file and the field.
#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace taskreach {

// The settings that name one of a few choices are enums, checked once when the job file is
// read; the rest of the program trusts them. kNames<E> holds each enum's names as they stand
// in job files and in the output, in the order of its values.
enum class Arch { linear, mlp, cnn, resnet18 };
enum class Norm { group, batch };
enum class Activation { tanh, relu };
enum class Curvature { ggn, hessian };
enum class LogdetScale { laplace, paper };
enum class Schedule { constant, step, cosine };
enum class DType { float32, float64 };
enum class Polish { newton_cg, lbfgs, spectral_lbfgs };
enum class Experiment { reachability, convergence, potential, critical_period };
enum class SourceFormat { idx, cifar10, cifar100, csv };
enum class LabelFormat { integer, letter };
enum class CifarLabel { fine, coarse };
enum class FitMode { resize, pad };
enum class TransformKind { class_subset, label_remap, random_labels, invert, blur, noise, subsample };

template <typename E> inline constexpr std::array<const char*, 0> kNames{};
template <> inline constexpr std::array kNames<Arch>{"linear", "mlp", "cnn", "resnet18"};
template <> inline constexpr std::array kNames<Norm>{"group", "batch"};
template <> inline constexpr std::array kNames<Activation>{"tanh", "relu"};
template <> inline constexpr std::array kNames<Curvature>{"ggn", "hessian"};
template <> inline constexpr std::array kNames<LogdetScale>{"laplace", "paper"};
template <> inline constexpr std::array kNames<Schedule>{"constant", "step", "cosine"};
template <> inline constexpr std::array kNames<DType>{"float32", "float64"};
template <> inline constexpr std::array kNames<Polish>{"newton_cg", "lbfgs", "spectral_lbfgs"};
template <> inline constexpr std::array kNames<Experiment>{"reachability", "convergence", "potential", "critical_period"};
template <> inline constexpr std::array kNames<SourceFormat>{"idx", "cifar10", "cifar100", "csv"};
template <> inline constexpr std::array kNames<LabelFormat>{"integer", "letter"};
template <> inline constexpr std::array kNames<CifarLabel>{"fine", "coarse"};
template <> inline constexpr std::array kNames<FitMode>{"resize", "pad"};
template <> inline constexpr std::array kNames<TransformKind>{"class_subset", "label_remap", "random_labels", "invert",
                                                             "blur",         "noise",       "subsample"};

template <typename E>
const char* to_string(E e) {
  return kNames<E>[static_cast<size_t>(e)];
}

// The value of E named `name`; throws std::invalid_argument when there is none. The job file
// parser gives its own one-line InputError; this is for programs that build settings.
template <typename E>
E from_string(const std::string& name) {
  for (size_t i = 0; i < kNames<E>.size(); ++i)
    if (name == kNames<E>[i]) return static_cast<E>(i);
  throw std::invalid_argument("no setting named '" + name + "'");
}

// A bad job file or bad input data: one line, "FILE: FIELD: what was expected".
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SourceConfig {
  std::string name;
  SourceFormat format = SourceFormat::idx;
  std::string train_images, train_labels;  // idx: paths after ${VAR} expansion
  std::string test_images, test_labels;    // idx: optional
  std::string label_space;                 // defaults to the source name
  // cifar10/cifar100: binary batch files; csv: text files (plain or gzip). Read in order as
  // one split.
  std::vector<std::string> train_files, test_files;
  CifarLabel cifar_label = CifarLabel::fine;  // cifar100: fine (100 classes) | coarse (20)
  int64_t label_column = -1;              // csv: 0-based field; negative counts from the end
  LabelFormat label_format = LabelFormat::integer;  // csv: letter: A..Z → 0..25, either case
  int64_t skip_rows = 0;                  // csv: header lines to skip
  std::vector<int64_t> shape;             // csv: [C, H, W] of the features; default [1, 1, F]
  double scale = 1.0;                     // csv: features are divided by it (to [0, 1])
  int64_t num_classes = 0;                // declared classes; 0: the format's (or max label + 1)
  double test_fraction = 0.0;             // no test split of its own: seeded held-out share
  FitMode fit = FitMode::resize;          // to the job's input_shape: bilinear resize or pad
  bool transpose = false;                 // idx: images stored column-major (EMNIST)
};

// One transform of a task's chain, each kind with only its own parameters; a Transform
// holds one of them, its index() being its TransformKind. Code that applies transforms
// visits every alternative, so a new kind cannot be left unhandled anywhere.
namespace transform {
struct ClassSubset {
  std::vector<int64_t> classes;  // the classes kept
};
struct LabelRemap {
  std::vector<int64_t> map;  // class c → map[c]
};
struct RandomLabels {
  double fraction = -1.0;  // share of the task's samples, or
  int64_t count = -1;      // the exact number of samples (one of the two is set)
  uint64_t seed = 0;       // mixed with the job seed
};
struct Invert {};
struct Blur {
  double sigma = 0.0;  // pixels
};
struct Noise {
  double sigma = 0.0;  // std in units of the [0, 1] pixel
  uint64_t seed = 0;   // mixed with the job seed
};
struct Subsample {
  int64_t n = 0;  // samples kept (stratified)
};
}  // namespace transform

using Transform = std::variant<transform::ClassSubset, transform::LabelRemap, transform::RandomLabels,
                               transform::Invert, transform::Blur, transform::Noise, transform::Subsample>;
static_assert(std::variant_size_v<Transform> == kNames<TransformKind>.size(), "one alternative per TransformKind");

inline TransformKind kind_of(const Transform& t) { return static_cast<TransformKind>(t.index()); }

// A visitor from lambdas: std::visit(overloaded{[](const transform::Blur&) {...}, ...}, t).
template <typename... F>
struct overloaded : F... {
  using F::operator()...;
};
template <typename... F>
overloaded(F...) -> overloaded<F...>;

struct TaskConfig {
  std::string name;
  std::string source;
  std::vector<Transform> transforms;
};

struct ModelConfig {
  Arch arch = Arch::mlp;
  std::vector<int64_t> hidden{32};     // mlp widths; cnn: the dense layer after the convolutions
  std::vector<int64_t> channels{16, 32};  // cnn: output channels of its 3×3 conv layers
  int64_t width = 64;                  // resnet18: channels of the first stage
  Norm norm = Norm::group;             // resnet18 (batch: curvature then in eval mode)
  Activation activation = Activation::tanh;  // the job file's default: relu for resnet18
};

struct TrainConfig {
  int64_t epochs = 20;
  int64_t batch_size = 64;
  double lr = 0.05;
  double momentum = 0.9;
  bool weight_decay_auto = true;  // γ_D = β/(λ² n_D)
  double weight_decay = 0.0;      // used when !weight_decay_auto
  DType dtype = DType::float32;   // SGD precision; the polish and curvature are float64
  double grad_tol = 1e-5;         // ‖∇(L_D + β/(2λ²)‖w‖²)‖ / n
  int64_t polish_iters = 500;     // at most: L-BFGS iterations, or Newton–CG data passes
  // The float64 polish to grad_tol: L-BFGS (strong-Wolfe line search) in the variables of a
  // spectral preconditioner built from the top Ritz pairs of G at the SGD end point (the
  // default), plain L-BFGS, or trust-region Newton–CG (Steihaug) on exact Hessian products in
  // the same preconditioned variables. By measurement on the demo at one seed (15 jobs, 2
  // ranks): 1,505 data passes per job (320 s) against plain L-BFGS's 2,254 (446 s).
  Polish polish = Polish::spectral_lbfgs;
  int64_t seeds = 1;
  int64_t steps = 0;              // SGD steps; 0: `epochs` passes over the task
  Schedule schedule = Schedule::constant;
  std::vector<int64_t> milestones;    // step: steps at which lr *= factor
  double factor = 0.1;
  int64_t eval_every = 50;        // steps between evaluations of the whole-task mean loss
  double loss_threshold = 0.0;    // convergence time: first step with mean loss below it (0: off)
};

// Fine-tune cost T(i|j) (DESIGN §1): SGD from w*_j on D_i at a constant rate until the mean
// loss of D_i falls below θ_i; the same protocol from scratch gives T(i|i) and θ_i.
struct FinetuneConfig {
  bool enabled = true;
  double lr = 0.05;
  int64_t batch_size = 64;
  double momentum = 0.9;
  int64_t eval_every = 10;
  int64_t max_steps = 2000;     // a pair not reached by then is "not reached", never the cap
  double loss_margin = 0.05;    // θ_i = median of the scratch run's last 10 evaluations + margin
  double threshold = 0.0;       // > 0: a fixed θ for every task instead
};

struct ComplexityConfig {
  double beta = 1.0;
  double lambda2 = 1.0;
  LogdetScale logdet_scale = LogdetScale::laplace;  // laplace: c = λ²/β; paper: c = 2λ²/β
  Curvature curvature = Curvature::ggn;
  int64_t top_k = 10;
  // top_k not given: each job's k is max(10, its active head rows), since a model of K classes has
  // about K outlying eigenvalues (a union over two label spaces, twice as many as its parts).
  bool top_k_auto = true;
  int64_t probes = 16;
  int64_t lanczos_steps = 30;  // m: the least Lanczos steps per probe
  // The most: m = ⌈√(1 + c·λ_{k+1})⌉ within [lanczos_steps, lanczos_max], from the top-k solve
  // (the Gauss rule's error falls like exp(−4m/√κ) for κ = 1 + c·λ_{k+1}).
  int64_t lanczos_max = 400;
  int64_t probe_block = 0;     // probes per block product (0: automatic, by memory)
  // The operator's precision: float32 model and graphs between float64 Krylov vectors, or float64.
  DType dtype = DType::float64;
  int64_t batch_size = 256;  // samples per curvature-product batch
  // The top-k solve's relative tolerance: the log det's error is second order in it (README).
  double eps_tol = 1e-4;
  // Samples per rank whose autograd graphs the curvature operator holds for the whole solve;
  // the rest are rebuilt per micro-batch in every product (memory O(batch), one more forward
  // pass per product). −1: all.
  int64_t graph_samples = 16384;
  // The m/2 quadrature check enforced (the Lanczos runs continue to 2m once, then quadrature_unconverged).
  bool quadrature_check = true;
  int64_t samples = 0;       // curvature on a fixed seeded subsample of this size, scaled by n/n_sub (0: all)
};

// The learning-dynamics experiments (job key `experiment`), beside the reachability run.
// τ everywhere: the first evaluated SGD step with mean loss below train.loss_threshold.
struct ConvergenceConfig {
  std::string task;                        // base task of the label and batch sweeps; default: the first
  std::vector<int64_t> random_labels;      // samples of the base task relabelled at random, a run each
  std::vector<int64_t> batch_sizes;        // SGD batch sizes at the fixed train.lr
  int64_t batch_random_labels = 0;         // random labels in the batch-size sweep's task
  std::vector<ModelConfig> architectures;  // each trained on every [[tasks]] task
  int64_t seeds = 2;
};

struct PotentialConfig {
  std::string task;             // default: the first
  int64_t curvature_every = 1;  // snapshots: every k-th evaluation (train.eval_every steps)
};

struct CriticalPeriodConfig {
  std::string task;                     // the clean task; default: the first
  double sigma = 2.0;                   // the deficit: Gaussian blur of this many pixels
  std::vector<int64_t> deficit_epochs;  // K values; K = 0 (no deficit) is always run
  int64_t clean_epochs = 20;            // the fixed budget on clean inputs after the deficit
  int64_t seeds = 2;
};

struct JobConfig {
  Experiment experiment = Experiment::reachability;
  ConvergenceConfig convergence;
  PotentialConfig potential;
  CriticalPeriodConfig critical_period;
  std::string path;      // the job file
  std::string text;      // verbatim TOML, stored in the output
  std::string name;
  uint64_t seed = 1;
  int64_t ranks_per_task = 1;
  int64_t n_per_task = 0;  // 0: no cap
  int64_t n_test_per_task = 0;  // cap on each task's test split (stratified); 0: no cap
  std::vector<int64_t> input_shape;  // [C, H, W] every source is fitted to; empty: sources agree
  std::vector<SourceConfig> sources;
  std::vector<TaskConfig> tasks;
  ModelConfig model;
  TrainConfig train;
  FinetuneConfig finetune;
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
