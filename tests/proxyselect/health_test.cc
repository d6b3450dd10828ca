#include "proxyselect/health.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nighfs::proxyselect {
namespace {

using absl::Seconds;
using ::testing::HasSubstr;

class HealthTest : public ::testing::Test {
 protected:
  HealthOptions Options() {
    HealthOptions o;
    o.readmit_after = 2;
    o.base_ejection = Seconds(1);
    o.max_ejection = Seconds(8);
    o.forget_after = Seconds(60);
    return o;
  }
  // Probes once per second until readmitted; how many it took.
  int ProbeUntilHealthy(MemberHealth& h) {
    for (int i = 1; i <= 100; ++i) {
      now_ += Seconds(1);
      h.OnSuccess(now_, Source::kProbe);
      if (h.healthy()) return i;
    }
    return -1;
  }
  absl::Time now_ = absl::UnixEpoch();
};

TEST_F(HealthTest, AFailedRequestEjectsAtOnceAndSaysWhy) {
  MemberHealth h(Options());
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.why(), "ok");
  h.OnFailure(now_, Source::kRequest, absl::UnavailableError("connection refused"));
  EXPECT_FALSE(h.healthy());
  EXPECT_THAT(h.why(), HasSubstr("connection refused"));
  EXPECT_THAT(h.why(), HasSubstr("(request)"));
}

TEST_F(HealthTest, ReadmittedAfterEjectionTimeAndConsecutiveProbes) {
  MemberHealth h(Options());
  h.OnFailure(now_, Source::kProbe, absl::DeadlineExceededError("no answer"));
  // A probe within the ejection second does not count.
  h.OnSuccess(now_ + absl::Milliseconds(500), Source::kProbe);
  EXPECT_FALSE(h.healthy());
  h.OnSuccess(now_ + Seconds(1), Source::kProbe);
  EXPECT_FALSE(h.healthy());  // 1 of 2
  // A failure in between starts the run over.
  h.OnFailure(now_ + Seconds(2), Source::kProbe, absl::UnavailableError("reset"));
  h.OnSuccess(now_ + Seconds(3), Source::kProbe);
  EXPECT_FALSE(h.healthy());
  h.OnSuccess(now_ + Seconds(3.5), Source::kProbe);
  EXPECT_TRUE(h.healthy());
}

TEST_F(HealthTest, RealRequestsDoNotReadmit) {
  MemberHealth h(Options());
  h.OnFailure(now_, Source::kRequest, absl::UnavailableError("x"));
  for (int i = 1; i < 10; ++i) h.OnSuccess(now_ + Seconds(i), Source::kRequest);
  EXPECT_FALSE(h.healthy());
}

TEST_F(HealthTest, EjectionTimeDoublesOnRepeatedEjectionsUpToTheCap) {
  MemberHealth h(Options());
  const absl::Duration expected[] = {Seconds(1), Seconds(2), Seconds(4), Seconds(8), Seconds(8)};
  for (absl::Duration want : expected) {
    h.OnFailure(now_, Source::kProbe, absl::UnavailableError("flap"));
    EXPECT_EQ(h.ejection_time(), want);
    EXPECT_EQ(h.ejected_until(), now_ + want);
    now_ = h.ejected_until() - Seconds(1);
    ASSERT_GE(ProbeUntilHealthy(h), 2);
  }
}

TEST_F(HealthTest, DoublingIsForgottenAfterStayingHealthy) {
  MemberHealth h(Options());
  h.OnFailure(now_, Source::kProbe, absl::UnavailableError("a"));
  ProbeUntilHealthy(h);
  h.OnFailure(now_, Source::kProbe, absl::UnavailableError("b"));
  EXPECT_EQ(h.ejection_time(), Seconds(2));
  ProbeUntilHealthy(h);
  now_ += Seconds(61);
  h.OnFailure(now_, Source::kProbe, absl::UnavailableError("c"));
  EXPECT_EQ(h.ejection_time(), Seconds(1));
  EXPECT_EQ(h.ejections(), 1);
}

TEST_F(HealthTest, FailingWhileEjectedRestartsTheSameEjection) {
  MemberHealth h(Options());
  h.OnFailure(now_, Source::kProbe, absl::UnavailableError("a"));
  h.OnFailure(now_ + Seconds(5), Source::kProbe, absl::UnavailableError("still"));
  EXPECT_EQ(h.ejection_time(), Seconds(1));
  EXPECT_EQ(h.ejected_until(), now_ + Seconds(6));
  EXPECT_EQ(h.ejections(), 1);
}

}  // namespace
}  // namespace nighfs::proxyselect
