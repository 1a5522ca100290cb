// Job-file parsing: defaults, the formula switch, and one-line errors naming file and field.
#include <gtest/gtest.h>

#include <cstdlib>

#include "taskreach/config.hpp"

using namespace taskreach;

namespace {
const std::string kFashion = R"(
[[sources]]
name = "fashion"
format = "idx"
train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
)";

std::string error_of(const std::string& text) {
  try {
    parse_job(text, "bad.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST(Config, ParsesAJobWithDefaults) {
  auto job = parse_job(kFashion + R"(
[[tasks]]
name = "fashion"
source = "fashion"
[[tasks]]
name = "fashion-blur"
source = "fashion"
transforms = [ { type = "class_subset", classes = [0, 1, 2] }, { type = "blur", sigma = 1.5 } ]
)", "ok.toml");
  ASSERT_EQ(job.tasks.size(), 2u);
  EXPECT_EQ(job.tasks[1].transforms.size(), 2u);
  EXPECT_EQ(std::get<transform::ClassSubset>(job.tasks[1].transforms[0]).classes, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_DOUBLE_EQ(std::get<transform::Blur>(job.tasks[1].transforms[1]).sigma, 1.5);
  EXPECT_TRUE(job.train.weight_decay_auto);
  EXPECT_EQ(job.complexity.curvature, Curvature::ggn);
  EXPECT_DOUBLE_EQ(job.logdet_c(), 1.0);
}

TEST(Config, LogdetScaleSwitch) {
  auto base = kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n";
  auto laplace = parse_job(base + "[complexity]\nbeta = 0.5\nlambda2 = 2.0\n", "a.toml");
  auto paper = parse_job(base + "[complexity]\nbeta = 0.5\nlambda2 = 2.0\nlogdet_scale = \"paper\"\n", "b.toml");
  EXPECT_DOUBLE_EQ(laplace.logdet_c(), 4.0);  // λ²/β
  EXPECT_DOUBLE_EQ(paper.logdet_c(), 8.0);    // 2λ²/β
}

TEST(Config, UnknownKeyNamesFileAndField) {
  auto msg = error_of(kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n[train]\nepochz = 3\n");
  EXPECT_NE(msg.find("bad.toml: train.epochz: unknown key"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(Config, MissingDatasetFileNamesField) {
  auto msg = error_of(R"(
[[sources]]
name = "m"
format = "idx"
train_images = "/nonexistent/train-images.gz"
train_labels = "/nonexistent/train-labels.gz"
[[tasks]]
name = "a"
source = "m"
)");
  EXPECT_NE(msg.find("bad.toml: sources[0].train_images: cannot open '/nonexistent/train-images.gz'"),
            std::string::npos) << msg;
}

TEST(Config, BadValuesAreRejected) {
  const auto task = std::string("[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n");
  EXPECT_NE(error_of(kFashion + task + "[train]\nlr = -1\n").find("train.lr"), std::string::npos);
  EXPECT_NE(error_of(kFashion + task + "[train]\nepochs = \"ten\"\n").find("train.epochs: expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of(kFashion + task + "[complexity]\ncurvature = \"kfac\"\n").find("complexity.curvature"),
            std::string::npos);
  EXPECT_NE(error_of(kFashion + "[[tasks]]\nname = \"a\"\nsource = \"nope\"\n").find("tasks[0].source: unknown source"),
            std::string::npos);
  EXPECT_NE(error_of(kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\ntransforms = [{type = \"blur\"}]\n")
                .find("tasks[0].transforms[0].sigma: missing"),
            std::string::npos);
  EXPECT_NE(error_of(kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\ntransforms = [{type = \"invert\", n = 3}]\n")
                .find("tasks[0].transforms[0].n: not a parameter"),
            std::string::npos);
  EXPECT_NE(error_of(kFashion + task + task).find("tasks[1].name: duplicate"), std::string::npos);
  EXPECT_NE(error_of("x = [").find("bad.toml:1:"), std::string::npos);
  EXPECT_NE(error_of("name = \"x\"\n").find("sources: expected at least one"), std::string::npos);
}

TEST(Config, ExpandsEnvironmentVariables) {
  setenv("TASKREACH_TEST_DIR", "/data/here", 1);
  EXPECT_EQ(expand_env("${TASKREACH_TEST_DIR}/x.gz", "f"), "/data/here/x.gz");
  unsetenv("TASKREACH_TEST_UNSET");
  try {
    expand_env("${TASKREACH_TEST_UNSET}/x", "job.toml: sources[0].train_images");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("TASKREACH_TEST_UNSET is not set"), std::string::npos);
  }
}

// The binary run without taskreach.sh finds the data cache the script fills.
TEST(Config, DataDirectoryDefaultsToTheCache) {
  const char* old = std::getenv("TASKREACH_DATA");
  const std::string saved = old ? old : "";
  unsetenv("TASKREACH_DATA");
  setenv("HOME", std::getenv("HOME") ? std::getenv("HOME") : "/root", 1);
  EXPECT_EQ(expand_env("${TASKREACH_DATA}/mnist/x.gz", "f"), std::string(std::getenv("HOME")) + "/.cache/taskreach/data/mnist/x.gz");
  setenv("TASKREACH_DATA", "/elsewhere", 1);
  EXPECT_EQ(expand_env("${TASKREACH_DATA}/x.gz", "f"), "/elsewhere/x.gz");
  if (old) setenv("TASKREACH_DATA", saved.c_str(), 1);
  else unsetenv("TASKREACH_DATA");
}

// ---------------------------------------------------------------------------- sources and transforms

namespace {
const std::string kDigits = R"(
[[sources]]
name = "digits"
format = "csv"
train_files = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
shape = [1, 8, 8]
scale = 16
test_fraction = 0.2
)";
const std::string kTaskA = "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n";

std::string with_transform(const std::string& tr) {
  return kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\ntransforms = [" + tr + "]\n";
}
}  // namespace

TEST(Config, ParsesEveryFormatKeyAndTransform) {
  auto job = parse_job("input_shape = [3, 32, 32]\nn_test_per_task = 100\n" + kFashion + R"(
test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
test_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
fit = "pad"
num_classes = 10
transpose = true
)" + kDigits + R"(
[[sources]]
name = "letters"
format = "csv"
train_files = ["/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"]
label_column = 0
label_format = "letter"
skip_rows = 1
label_space = "abc"
[[sources]]
name = "c100"
format = "cifar100"
train_files = ["/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"]
label = "coarse"
[[tasks]]
name = "a"
source = "fashion"
transforms = [ { type = "label_remap", map = [1, 0] }, { type = "random_labels", fraction = 0.5, seed = 3 },
               { type = "random_labels", count = 7 }, { type = "noise", sigma = 0.1, seed = 2 },
               { type = "invert" } ]
)", "ok.toml");
  EXPECT_EQ(job.input_shape, (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(job.n_test_per_task, 100);
  ASSERT_EQ(job.sources.size(), 4u);
  EXPECT_EQ(job.sources[0].fit, FitMode::pad);
  EXPECT_EQ(job.sources[0].num_classes, 10);
  EXPECT_TRUE(job.sources[0].transpose);
  EXPECT_FALSE(job.sources[0].test_images.empty());
  EXPECT_EQ(job.sources[1].format, SourceFormat::csv);
  EXPECT_EQ(job.sources[1].train_files.size(), 1u);
  EXPECT_EQ(job.sources[1].shape, (std::vector<int64_t>{1, 8, 8}));
  EXPECT_DOUBLE_EQ(job.sources[1].scale, 16.0);
  EXPECT_DOUBLE_EQ(job.sources[1].test_fraction, 0.2);
  EXPECT_EQ(job.sources[1].fit, FitMode::resize);
  EXPECT_EQ(job.sources[2].label_column, 0);
  EXPECT_EQ(job.sources[2].label_format, LabelFormat::letter);
  EXPECT_EQ(job.sources[2].skip_rows, 1);
  EXPECT_EQ(job.sources[2].label_space, "abc");
  EXPECT_EQ(job.sources[3].cifar_label, CifarLabel::coarse);
  const auto& trs = job.tasks[0].transforms;
  ASSERT_EQ(trs.size(), 5u);
  EXPECT_EQ(std::get<transform::LabelRemap>(trs[0]).map, (std::vector<int64_t>{1, 0}));
  EXPECT_DOUBLE_EQ(std::get<transform::RandomLabels>(trs[1]).fraction, 0.5);
  EXPECT_EQ(std::get<transform::RandomLabels>(trs[1]).count, -1);
  EXPECT_EQ(std::get<transform::RandomLabels>(trs[1]).seed, 3u);
  EXPECT_EQ(std::get<transform::RandomLabels>(trs[2]).count, 7);
  EXPECT_DOUBLE_EQ(std::get<transform::Noise>(trs[3]).sigma, 0.1);
  EXPECT_EQ(std::get<transform::Noise>(trs[3]).seed, 2u);
}

TEST(Config, BadInputUnknownKey) {
  EXPECT_EQ(error_of(kDigits + "labl_column = 0\n[[tasks]]\nname = \"a\"\nsource = \"digits\"\n")
                .rfind("bad.toml: sources[0].labl_column: unknown key; expected one of: ", 0),
            0u);
  EXPECT_EQ(error_of(with_transform("{ type = \"noise\", sigmaa = 0.1 }"))
                .rfind("bad.toml: tasks[0].transforms[0].sigmaa: unknown key", 0),
            0u);
  EXPECT_EQ(error_of("input_shapes = [1, 2, 3]\n" + kFashion + kTaskA).rfind("bad.toml: input_shapes: unknown key", 0),
            0u);
  // A key of another format, or of another transform, is not silently ignored.
  EXPECT_EQ(error_of(kFashion + "label_column = 0\n" + kTaskA),
            "bad.toml: sources[0].label_column: not a parameter of format 'idx'");
  EXPECT_EQ(error_of(with_transform("{ type = \"noise\", sigma = 0.1, n = 3 }")),
            "bad.toml: tasks[0].transforms[0].n: not a parameter of transform 'noise'");
}

TEST(Config, BadInputWrongType) {
  EXPECT_EQ(error_of(with_transform("{ type = \"blur\", sigma = \"wide\" }")),
            "bad.toml: tasks[0].transforms[0].sigma: expected a number");
  EXPECT_EQ(error_of(kDigits + "label_column = \"last\"\n[[tasks]]\nname = \"a\"\nsource = \"digits\"\n"),
            "bad.toml: sources[0].label_column: expected an integer");
  EXPECT_EQ(error_of("[[sources]]\nname = \"c\"\nformat = \"cifar10\"\ntrain_files = 3\n"),
            "bad.toml: sources[0].train_files: expected a path or an array of paths");
  EXPECT_EQ(error_of("input_shape = \"3x32x32\"\n" + kFashion + kTaskA),
            "bad.toml: input_shape: expected an array of integers");
  EXPECT_EQ(error_of(kFashion + "transpose = 1\n" + kTaskA), "bad.toml: sources[0].transpose: expected true or false");
  EXPECT_EQ(error_of(with_transform("{ type = \"label_remap\", map = [0, 1.5] }")),
            "bad.toml: tasks[0].transforms[0].map: expected an array of integers");
}

TEST(Config, BadInputOutOfRangeValues) {
  EXPECT_EQ(error_of(with_transform("{ type = \"blur\", sigma = -1.0 }")),
            "bad.toml: tasks[0].transforms[0].sigma: expected a positive value, got -1");
  EXPECT_EQ(error_of(with_transform("{ type = \"noise\", sigma = -0.5 }")),
            "bad.toml: tasks[0].transforms[0].sigma: expected a positive value, got -0.5");
  EXPECT_EQ(error_of(with_transform("{ type = \"random_labels\", fraction = 1.5 }")),
            "bad.toml: tasks[0].transforms[0].fraction: expected a value in [0, 1], got 1.5");
  EXPECT_EQ(error_of(with_transform("{ type = \"random_labels\", count = -2 }")),
            "bad.toml: tasks[0].transforms[0].count: expected an integer >= 0, got -2");
  EXPECT_EQ(error_of(with_transform("{ type = \"random_labels\", count = 2, fraction = 0.1 }")),
            "bad.toml: tasks[0].transforms[0].count: expected exactly one of fraction or count");
  EXPECT_EQ(error_of(with_transform("{ type = \"label_remap\", map = [0, -1] }")),
            "bad.toml: tasks[0].transforms[0].map: expected an integer >= 0, got -1");
  EXPECT_EQ(error_of(kFashion + "test_fraction = 1.0\n" + kTaskA),
            "bad.toml: sources[0].test_fraction: expected a value in [0, 1), got 1");
  EXPECT_EQ(error_of(kFashion + "test_images = \"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\"\n"
                                "test_labels = \"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\"\n"
                                "test_fraction = 0.1\n" + kTaskA),
            "bad.toml: sources[0].test_fraction: the source has a test split of its own; expected no test_fraction");
  EXPECT_EQ(error_of("input_shape = [1, 0, 28]\n" + kFashion + kTaskA),
            "bad.toml: input_shape: expected an integer >= 1, got 0");
  EXPECT_EQ(error_of("input_shape = [28, 28]\n" + kFashion + kTaskA),
            "bad.toml: input_shape: expected [C, H, W], three integers");
  std::string zero_scale = kDigits;
  zero_scale.replace(zero_scale.find("scale = 16"), 10, "scale = 0");
  EXPECT_EQ(error_of(zero_scale + "[[tasks]]\nname = \"a\"\nsource = \"digits\"\n"),
            "bad.toml: sources[0].scale: expected a positive value, got 0");
  EXPECT_EQ(error_of(kFashion + "num_classes = 0\n" + kTaskA),
            "bad.toml: sources[0].num_classes: expected an integer >= 1, got 0");
  EXPECT_EQ(error_of(kFashion + "fit = \"stretch\"\n" + kTaskA),
            "bad.toml: sources[0].fit: unknown fit 'stretch', expected one of: resize, pad");
}

TEST(Config, BadInputMissingFiles) {
  EXPECT_EQ(error_of("[[sources]]\nname = \"c\"\nformat = \"cifar10\"\ntrain_files = [\"/nonexistent/data_batch_1.bin\"]\n"),
            "bad.toml: sources[0].train_files: cannot open '/nonexistent/data_batch_1.bin' (file missing or unreadable)");
  EXPECT_EQ(error_of("[[sources]]\nname = \"c\"\nformat = \"csv\"\n"),
            "bad.toml: sources[0].train_files: missing; expected a path or an array of paths to csv files");
  EXPECT_EQ(error_of(kFashion + "test_images = \"/nonexistent/t10k\"\n" + kTaskA),
            "bad.toml: sources[0].test_labels: missing; test_images and test_labels come as a pair");
  EXPECT_EQ(error_of("[[sources]]\nname = \"x\"\nformat = \"parquet\"\n"),
            "bad.toml: sources[0].format: unknown format 'parquet', expected one of: idx, cifar10, cifar100, csv");
}

// Every named choice is an enum, checked once here: a bad name never reaches the data,
// training or curvature modules.
TEST(Config, BadInputUnknownChoices) {
  EXPECT_EQ(error_of(kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n"
                                "[[tasks.transforms]]\ntype = \"rotate\"\n"),
            "bad.toml: tasks[0].transforms[0].type: unknown transform 'rotate', expected one of: class_subset, "
            "label_remap, random_labels, invert, blur, noise, subsample");
  EXPECT_EQ(error_of(kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n"
                                "[[tasks.transforms]]\nsigma = 1.0\n"),
            "bad.toml: tasks[0].transforms[0].type: missing; expected one of: class_subset, label_remap, "
            "random_labels, invert, blur, noise, subsample");
  EXPECT_EQ(error_of("[model]\narch = \"vit\"\n" + kFashion + kTaskA),
            "bad.toml: model.arch: unknown architecture 'vit', expected one of: linear, mlp, cnn, resnet18");
  EXPECT_EQ(error_of("[train]\nschedule = \"linear\"\n" + kFashion + kTaskA),
            "bad.toml: train.schedule: unknown schedule 'linear', expected one of: constant, step, cosine");
  EXPECT_EQ(error_of("[complexity]\ncurvature = \"fisher\"\n" + kFashion + kTaskA),
            "bad.toml: complexity.curvature: unknown curvature 'fisher', expected one of: ggn, hessian");
  EXPECT_EQ(error_of("experiment = \"finetune\"\n" + kFashion + kTaskA),
            "bad.toml: experiment: unknown experiment 'finetune', expected one of: reachability, convergence, "
            "potential, critical_period");
  // The names round-trip through the one table.
  EXPECT_EQ(from_string<Arch>(to_string(Arch::resnet18)), Arch::resnet18);
  EXPECT_STREQ(to_string(TransformKind::random_labels), "random_labels");
  EXPECT_THROW(from_string<Norm>("layer"), std::invalid_argument);
}

// toml++ 3.3 reaches undefined behaviour on some non-ASCII text (see check_non_ascii in
// src/config/job.cpp): such text is rejected first, with a TOML syntax error naming the line
// and column; non-ASCII in comments and string values stays accepted.
TEST(Config, NonAsciiOnlyInCommentsAndStringValues) {
  const std::string ok = "# Données: σ = 0.5 — ünïcode in a comment\n" + kFashion + R"(
label_space = "chiffres ü"   # and after a value
[[tasks]]
name = "ü-task"
source = "fashion"
transforms = [ { type = "blur", sigma = 1.0 },
  { type = "noise", sigma = 0.5 } ]  # ×
[model]
hidden = [ 8,
  4 ]  # a multi-line array
)";
  const auto job = parse_job("\xEF\xBB\xBF" + ok, "ok.toml");  // with a UTF-8 byte order mark
  EXPECT_EQ(job.tasks[0].name, "ü-task");
  EXPECT_EQ(job.sources[0].label_space, "chiffres ü");
  EXPECT_EQ(parse_job("name = \"\"\"multi\nline ü \\\n  trimmed\"\"\"\n" + ok, "ok.toml").name,
            "multi\nline ü trimmed");
  EXPECT_EQ(parse_job("name = '''ü'''\n" + ok, "ok.toml").name, "ü");

  const auto syntax = [](const std::string& msg, const std::string& where) {
    return msg.find("bad.toml:" + where + ": TOML syntax error: ") != std::string::npos &&
           msg.find('\n') == std::string::npos;
  };
  const std::string base = kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n";
  EXPECT_TRUE(syntax(error_of("ü = 1\n" + base), "1:1"));
  EXPECT_TRUE(syntax(error_of("name = 3\xc2\xa7\n" + base), "1:9"));
  EXPECT_TRUE(syntax(error_of("name = 3\"\xc2\xa7\"\n" + base), "1:10"));
  EXPECT_TRUE(syntax(error_of("seed = 0.'\xc2\xa7'\n" + base), "1:11"));
  EXPECT_TRUE(syntax(error_of("\"\xc3\xbc\" = 1\n" + base), "1:2"));
  EXPECT_TRUE(syntax(error_of("[\"\xc3\xbc\"]\n" + base), "1:3"));
  EXPECT_TRUE(syntax(error_of("name = \"\"\"\\\xc3\xbc\"\"\"\n" + base), "1:12"));
  EXPECT_TRUE(syntax(error_of("name = \"\"\"\\\n  \xc2\xa7\"\"\"\n" + base), "2:3"));
}

// Found reviewing the parser beside the fuzzer: values that passed every range check but
// were not numbers, and products that overflowed.
TEST(Config, NonFiniteNumbersAndOverflowingProductsAreRejected) {
  const std::string base = kFashion + "[[tasks]]\nname = \"a\"\nsource = \"fashion\"\n";
  EXPECT_EQ(error_of(base + "[train]\nmomentum = nan\n"), "bad.toml: train.momentum: expected a finite number, got nan");
  EXPECT_EQ(error_of(base + "[complexity]\nbeta = inf\n"), "bad.toml: complexity.beta: expected a finite number, got inf");
  EXPECT_EQ(error_of(base + "[finetune]\nloss_margin = -nan\n").rfind("bad.toml: finetune.loss_margin: expected a finite", 0), 0u);
  EXPECT_EQ(error_of(base + "[finetune]\neval_every = 1000000000000000000\n"),
            "bad.toml: finetune.max_steps: expected an integer >= 10 * eval_every = more than 2^63, got 2000");
  EXPECT_EQ(error_of(base + "[finetune]\neval_every = 300\n"),
            "bad.toml: finetune.max_steps: expected an integer >= 10 * eval_every = 3000, got 2000");
  EXPECT_EQ(error_of("input_shape = [4294967296, 4294967296, 1]\n" + base),
            "bad.toml: input_shape: expected at most 2^31 values per sample, got 4294967296x4294967296x1");
  EXPECT_EQ(parse_job("input_shape = [2, 1024, 1048576]\n" + base, "ok.toml").input_shape[2], 1048576);
}
