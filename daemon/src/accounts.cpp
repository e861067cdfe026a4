#include "accounts.hpp"

#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <istream>
#include <memory>
#include <ostream>

#include "dagd/scheduler/auth.hpp"
#include "dagd/scheduler/credentials.hpp"
#include "dagd/storage/pg_user_store.hpp"
#include "embedded_postgres.hpp"
#include "logging.hpp"
#include "state_dir.hpp"

namespace dagd::daemon {
namespace {

using scheduler::ApiTokenRecord;
using scheduler::Role;
using scheduler::TimePoint;
using scheduler::UserRecord;

constexpr size_t kMaxNameBytes = 64;

// Names are shown in tables and logs: plain characters only.
bool ValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes &&
         name.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             "._@-") == std::string_view::npos;
}

// Echo off on the terminal for as long as it lives.
class NoEcho {
 public:
  NoEcho() {
    if (::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios quiet = saved_;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
  }
  ~NoEcho() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  NoEcho(const NoEcho&) = delete;
  NoEcho& operator=(const NoEcho&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

std::string ReadLine(std::istream& in) {
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

StatusOr<std::string> ReadPassword(const AccountCommand& a, std::istream& in, std::ostream& err) {
  std::string password;
  if (a.password_stdin || !::isatty(STDIN_FILENO)) {
    password = ReadLine(in);
  } else {
    std::string again;
    {
      NoEcho quiet;
      err << "Password for '" << a.name << "': " << std::flush;
      password = ReadLine(in);
      err << "\nRepeat it: " << std::flush;
      again = ReadLine(in);
      err << "\n";
    }
    if (password != again) return Status::InvalidArgument("the two passwords differ");
  }
  if (password.empty()) {
    return Status::InvalidArgument("no password given (one line on stdin, or typed when asked)");
  }
  if (password.size() > scheduler::kMaxPasswordBytes) {
    return Status::InvalidArgument("the password is longer than 1024 bytes");
  }
  return password;
}

// "90d", "12h", "30m", "3600" (seconds) or "never" (nullopt in the value).
StatusOr<std::optional<std::chrono::seconds>> ParseExpiry(const std::string& text) {
  if (text == "never") return std::optional<std::chrono::seconds>();
  auto d = scheduler::ParseDurationText(text);
  if (!d || *d < std::chrono::seconds(1)) {
    return Status::InvalidArgument("--expires '" + text +
                                   "' is not a duration such as 90d, 12h or 30m, nor 'never'");
  }
  return std::optional<std::chrono::seconds>(std::chrono::duration_cast<std::chrono::seconds>(*d));
}

std::string When(const std::optional<TimePoint>& t, const char* none) {
  return t ? scheduler::FormatRfc3339(std::chrono::time_point_cast<std::chrono::seconds>(*t))
           : none;
}

int Fail(std::ostream& err, const std::string& what, const Status& s) {
  err << "dagd: " << what << ": " << s.message() << "\n";
  return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

int RunUsers(scheduler::UserStore& store, const AccountCommand& a, const std::string& password,
             std::ostream& out, std::ostream& err) {
  if (a.verb == "add") {
    auto hash = scheduler::HashPassword(password);
    if (!hash.ok()) return Fail(err, "cannot hash the password", hash.status());
    const UserRecord user{a.name, *scheduler::ParseRole(a.role), *hash,
                          scheduler::SystemClock().Now()};
    if (Status s = store.AddUser(user); !s.ok()) return Fail(err, "cannot add the user", s);
    err << "user '" << a.name << "' added with role " << a.role << "\n";
    return 0;
  }
  if (a.verb == "list") {
    auto users = store.ListUsers();
    if (!users.ok()) return Fail(err, "cannot list users", users.status());
    out << fmt::format("{:<24} {:<7} {}\n", "NAME", "ROLE", "CREATED");
    for (const auto& u : *users) {
      out << fmt::format("{:<24} {:<7} {}\n", u.name, scheduler::ToString(u.role),
                         When(u.created_at, "-"));
    }
    return 0;
  }
  if (a.verb == "set-password") {
    auto hash = scheduler::HashPassword(password);
    if (!hash.ok()) return Fail(err, "cannot hash the password", hash.status());
    if (Status s = store.SetPassword(a.name, *hash); !s.ok()) {
      return Fail(err, "cannot set the password", s);
    }
    err << "user '" << a.name << "' has a new password (JWTs already issued to it stay valid "
        << "until they expire)\n";
    return 0;
  }
  if (a.verb == "delete") {
    if (Status s = store.DeleteUser(a.name); !s.ok()) return Fail(err, "cannot delete", s);
    err << "user '" << a.name << "' deleted (JWTs already issued to it stay valid until they "
        << "expire)\n";
    return 0;
  }
  if (Status s = store.SetRole(a.name, *scheduler::ParseRole(a.role)); !s.ok()) {
    return Fail(err, "cannot set the role", s);
  }
  err << "user '" << a.name << "' now has role " << a.role
      << " (from its next POST /auth/token on)\n";
  return 0;
}

int RunTokens(scheduler::UserStore& store, const AccountCommand& a, std::ostream& out,
              std::ostream& err) {
  if (a.verb == "create") {
    auto lifetime = ParseExpiry(a.expires);
    if (!lifetime.ok()) return Fail(err, "bad --expires", lifetime.status());
    auto secret = scheduler::NewApiTokenSecret();
    if (!secret.ok()) return Fail(err, "cannot make a token", secret.status());
    const TimePoint now = scheduler::SystemClock().Now();
    ApiTokenRecord token{a.name,
                         *scheduler::ParseRole(a.role),
                         scheduler::Sha256Hex(*secret),
                         now,
                         std::nullopt,
                         std::nullopt};
    if (*lifetime) token.expires_at = now + **lifetime;
    if (Status s = store.AddToken(token); !s.ok()) return Fail(err, "cannot create the token", s);
    out << *secret << "\n" << std::flush;
    err << "token '" << a.name << "' created with role " << a.role << ", expires "
        << When(token.expires_at, "never")
        << "; it is shown only this once (use it as Authorization: Bearer <token>)\n";
    return 0;
  }
  if (a.verb == "list") {
    auto tokens = store.ListTokens();
    if (!tokens.ok()) return Fail(err, "cannot list tokens", tokens.status());
    out << fmt::format("{:<24} {:<7} {:<20} {:<20} {}\n", "NAME", "ROLE", "CREATED", "EXPIRES",
                       "LAST USED");
    for (const auto& t : *tokens) {
      out << fmt::format("{:<24} {:<7} {:<20} {:<20} {}\n", t.name, scheduler::ToString(t.role),
                         When(t.created_at, "-"), When(t.expires_at, "never"),
                         When(t.last_used_at, "never"));
    }
    return 0;
  }
  if (Status s = store.RevokeToken(a.name); !s.ok()) return Fail(err, "cannot revoke", s);
  err << "token '" << a.name << "' revoked\n";
  return 0;
}

}  // namespace

int RunAccountCommand(Command command, const Config& config, const AccountCommand& account,
                      std::istream& in, std::ostream& out, std::ostream& err) {
  SetUpLogging("warn");
  if (account.verb != "list" && !ValidName(account.name)) {
    err << "dagd: '" << account.name << "' is not a valid name: 1 to 64 letters, digits, '.', "
        << "'_', '@' or '-'\n";
    return 2;
  }
  std::string password;
  if (command == Command::kUsers && (account.verb == "add" || account.verb == "set-password")) {
    auto read = ReadPassword(account, in, err);
    if (!read.ok()) {
      return Fail(err, account.verb == "add" ? "cannot add the user" : "cannot set the password",
                  read.status());
    }
    password = std::move(*read);
  }

  std::string url = config.database_url;
  std::unique_ptr<EmbeddedPostgres> embedded;  // stopped (if this command started it) on return
  if (url.empty()) {
    if (geteuid() == 0 && !config.pg_user) {
      err << "dagd: as root without --database-url, pass --pg-user (the account that runs the "
             "embedded PostgreSQL, e.g. postgres), as for the daemon\n";
      return 2;
    }
    if (Status s =
            PrepareStateDir(config.state_dir, geteuid() == 0 ? config.pg_user : std::nullopt);
        !s.ok()) {
      return Fail(err, "cannot prepare the state directory " + config.state_dir.string(), s);
    }
    EmbeddedPostgresOptions options;
    options.state_dir = config.state_dir;
    options.run_as_user = config.pg_user;
    embedded = std::make_unique<EmbeddedPostgres>(options);
    auto running = embedded->FindRunning();
    if (!running.ok()) return Fail(err, "cannot use the embedded PostgreSQL", running.status());
    if (*running) {
      url = **running;
    } else if (Status s = embedded->Start(); !s.ok()) {
      return Fail(err, "the embedded PostgreSQL did not start", s);
    } else {
      url = embedded->conninfo();
    }
  }
  storage::PgOptions pg;
  pg.url = url;
  pg.pool_size = 1;
  auto store = storage::PgUserStore::Open(pg);
  if (!store.ok()) return Fail(err, "cannot open the database", store.status());
  return command == Command::kUsers ? RunUsers(**store, account, password, out, err)
                                    : RunTokens(**store, account, out, err);
}

}  // namespace dagd::daemon
