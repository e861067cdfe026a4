// GET /metrics through the Router: authentication and role, the text format, and the request
// latency series it records by route pattern (never the raw path).
#include <gtest/gtest.h>

#include "dagd/api/router.hpp"
#include "fake_authenticator.hpp"
#include "prometheus_text.hpp"
#include "stub_service.hpp"

namespace dagd::api {
namespace {

using testing::ParsePrometheusText;
using testing::PromText;

class MetricsRouteTest : public ::testing::Test {
 protected:
  MetricsRouteTest() : router_(service_, Options()) {}

  RouterOptions Options() {
    RouterOptions options;
    options.authenticator = &authenticator_;
    options.metrics = &registry_;
    return options;
  }

  Response Get(const std::string& target, const std::string& token = "viewer-token") {
    Request req("GET", target);
    if (!token.empty()) req.headers["authorization"] = "Bearer " + token;
    return router_.Handle(req);
  }

  PromText Scrape() {
    Response r = Get("/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    PromText text = ParsePrometheusText(r.body);
    for (const std::string& e : text.errors) ADD_FAILURE() << e << "\n" << r.body;
    return text;
  }

  testing::StubService service_;
  testing::FakeAuthenticator authenticator_;
  scheduler::MetricsRegistry registry_;
  Router router_;
};

TEST_F(MetricsRouteTest, WithoutATokenIs401AndAViewerGetsPrometheusText) {
  Response anonymous = Get("/metrics", "");
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  EXPECT_EQ(Get("/metrics", "nobody-token").status, 401);
  Response viewer = Get("/metrics");
  EXPECT_EQ(viewer.status, 200) << viewer.body;
  EXPECT_EQ(viewer.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(Get("/metrics/").status, 200);  // one trailing slash, as elsewhere
}

TEST_F(MetricsRouteTest, RequestsAreTimedByRoutePatternMethodAndStatus) {
  EXPECT_EQ(Get("/api/v2/version", "").status, 200);
  EXPECT_EQ(Get("/api/v2/dags/secret_dag/dagRuns/run_42").status, 404);
  EXPECT_EQ(Get("/api/v2/dags/secret_dag/dagRuns/run_43").status, 404);
  EXPECT_EQ(Get("/no/such/path/xyz").status, 404);
  Request brew("BREW", "/api/v2/version");
  EXPECT_EQ(router_.Handle(brew).status, 405);
  Request post("POST", "/api/v2/dags/secret_dag/dagRuns", {{"content-type", "application/json"}},
               "{}");
  post.headers["authorization"] = "Bearer viewer-token";
  EXPECT_EQ(router_.Handle(post).status, 403);

  PromText text = Scrape();
  const std::string name = "dagd_http_request_duration_seconds_count";
  EXPECT_EQ(text.Value(name, {{"route", "/api/v2/version"}, {"method", "GET"}, {"status", "200"}}),
            1);
  EXPECT_EQ(text.Value(name, {{"route", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}"},
                              {"method", "GET"},
                              {"status", "404"}}),
            2);
  EXPECT_EQ(text.Value(name, {{"route", "unmatched"}, {"method", "GET"}, {"status", "404"}}), 1);
  EXPECT_EQ(text.Value(name, {{"route", "/api/v2/version"}, {"method", "other"}}), 1);
  EXPECT_EQ(text.Value(name, {{"route", "/api/v2/dags/{dag_id}/dagRuns"},
                              {"method", "POST"},
                              {"status", "403"}}),
            1);
  // The ids a client sent never become label values.
  const std::string body = Get("/metrics").body;
  EXPECT_EQ(body.find("secret_dag"), std::string::npos) << body;
  EXPECT_EQ(body.find("xyz"), std::string::npos) << body;
  EXPECT_EQ(body.find("BREW"), std::string::npos) << body;
}

TEST_F(MetricsRouteTest, TheScrapeItselfIsTimedUnderItsOwnRoute) {
  Scrape();
  EXPECT_EQ(Scrape().Value("dagd_http_request_duration_seconds_count",
                           {{"route", "/metrics"}, {"method", "GET"}, {"status", "200"}}),
            1);
}

TEST_F(MetricsRouteTest, OtherMethodsAndQueryParametersAreRefused) {
  Request post("POST", "/metrics");
  post.headers["authorization"] = "Bearer viewer-token";
  EXPECT_EQ(router_.Handle(post).status, 405);
  Response query = Get("/metrics?name=dagd_x");
  EXPECT_EQ(query.status, 422) << query.body;
  EXPECT_NE(query.body.find("name"), std::string::npos) << query.body;
  EXPECT_EQ(Get("/metricsx").status, 404);
  EXPECT_EQ(Get("/api/v2/metrics").status, 404);
}

TEST(MetricsRoute, WithoutARegistryIs503WithASentence) {
  testing::StubService service;
  testing::FakeAuthenticator authenticator;
  RouterOptions options;
  options.authenticator = &authenticator;
  Router router(service, options);
  Request req("GET", "/metrics", {{"authorization", "Bearer viewer-token"}});
  Response r = router.Handle(req);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("Metrics are not enabled"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace dagd::api
