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
  EXPECT_EQ(job.tasks[1].transforms[0].classes, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_DOUBLE_EQ(job.tasks[1].transforms[1].sigma, 1.5);
  EXPECT_TRUE(job.train.weight_decay_auto);
  EXPECT_EQ(job.complexity.curvature, "ggn");
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
