# Build and install jailwarden from source.
#
#   sudo make install             build (as you, see `build`); install; create
#                                 the jailwarden user; enable and start the
#                                 service (systemd as PID 1)
#   sudo make uninstall           stop, disable, remove the files; keeps
#                                 /etc/jailwarden, /var/lib/jailwarden and the user
#   sudo make uninstall PURGE=1   ... and removes those too
#   sudo make install-compat      fail2ban-client -> jailwarden, for scripts and monitoring
#                                 written for Fail2ban (once Fail2ban is removed; not in the .deb)
#
# DESTDIR=/some/dir stages the files only (packaging): no user, no service.
# NO_BUILD=1 installs $(BIN) as it is, without running cargo.
# PREFIX (default /usr) places the binary, the units, the sysusers entry,
# the journal catalog and the docs; systemd looks under /usr/local too, and
# the units are rewritten to run $(BINDIR)/jailwarden. D-Bus, polkit, the
# shipped filters and the configuration go where their readers look, which
# PREFIX does not change.
#
# The Debian package: `make deb` (cargo build --release, the generated man
# pages and completions, then cargo deb; see Cargo.toml).

PREFIX      ?= /usr
BINDIR      ?= $(PREFIX)/bin
SYSTEMDDIR  ?= $(PREFIX)/lib/systemd
UNITDIR     ?= $(SYSTEMDDIR)/system
USERUNITDIR ?= $(SYSTEMDDIR)/user
CATALOGDIR  ?= $(SYSTEMDDIR)/catalog
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR      ?= $(PREFIX)/share/doc/jailwarden
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# Fixed: compiled into the binary, or read by dbus-daemon and polkitd.
SYSCONFDIR  ?= /etc
FILTERDIR   ?= /usr/share/jailwarden/filters
DBUSDIR     ?= /usr/share/dbus-1
POLKITDIR   ?= /usr/share/polkit-1/actions
# Cockpit finds packages here (harmless without Cockpit).
COCKPITDIR  ?= /usr/share/cockpit/jailwarden
STATEDIR    ?= /var/lib/jailwarden

CARGO       ?= cargo
TARGET      ?= $(or $(CARGO_TARGET_DIR),target)
BIN         ?= $(TARGET)/release/jailwarden
# What `make deb` generates for the package (cargo-deb's assets name it).
GEN         ?= $(TARGET)/release/generated

INSTALL      = install
# The D-Bus files come with the control surfaces; install what is there.
DBUS_POLICY  = $(wildcard dbus/org.jailwarden1.conf)
DBUS_SERVICE = $(wildcard dbus/org.jailwarden1.service)
DBUS_XML     = $(wildcard dbus/org.jailwarden1.xml)
POLKIT       = $(wildcard dbus/org.jailwarden1.policy)
EXAMPLES     = $(wildcard units/jailwarden.service.d/*.conf.example)
JAIL_EXAMPLES = $(wildcard config/jail.d/examples/*.toml.example)
FILTERS      = $(wildcard config/filters/*.toml)
# The Cockpit page (manifest rewritten for BINDIR) and its files.
COCKPIT_MANIFEST = $(wildcard cockpit/manifest.json)
COCKPIT      = $(wildcard cockpit/*.html cockpit/*.js cockpit/*.css)

# Only when installing for real (no DESTDIR) on a running system.
LIVE         = $(if $(DESTDIR),,yes)

.PHONY: all build install start uninstall install-compat uninstall-compat check-units deb generated

all: build

# `sudo make install` alone works: sudo's PATH usually lacks the user's
# ~/.cargo/bin, so the build then runs as the user who called sudo (login
# shell, so rustup's PATH applies), and target/ stays theirs.
build:
	@if command -v $(CARGO) >/dev/null 2>&1; then \
		$(CARGO) build --release --locked; \
	elif [ -n "$$SUDO_USER" ] && [ "$$SUDO_USER" != root ]; then \
		echo "cargo is not in root's PATH: building as $$SUDO_USER"; \
		su -s /bin/sh - "$$SUDO_USER" -c 'cd "$(CURDIR)" && cargo build --release --locked'; \
	elif [ -x "$(BIN)" ]; then \
		echo "cargo not found; installing the existing $(BIN)"; \
	else \
		echo "cargo not found and no $(BIN): install Rust (rustup), or run 'make' first as the user who has it" >&2; \
		exit 1; \
	fi

install: $(if $(NO_BUILD),,build)
	@if [ -n "$(LIVE)" ] && [ "$$(id -u)" != 0 ]; then \
		echo "make install needs root (or DESTDIR=... to stage the files)" >&2; exit 1; fi
	$(INSTALL) -Dm755 $(BIN) $(DESTDIR)$(BINDIR)/jailwarden
	$(INSTALL) -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/bin/jailwarden|$(BINDIR)/jailwarden|g' units/jailwarden.service \
		> $(DESTDIR)$(UNITDIR)/jailwarden.service
	chmod 644 $(DESTDIR)$(UNITDIR)/jailwarden.service
	$(INSTALL) -m644 units/jailwarden.socket $(DESTDIR)$(UNITDIR)/jailwarden.socket
	$(INSTALL) -d $(DESTDIR)$(USERUNITDIR)
	sed 's|/usr/bin/jailwarden|$(BINDIR)/jailwarden|g' units/user/jailwarden-notify.service \
		> $(DESTDIR)$(USERUNITDIR)/jailwarden-notify.service
	chmod 644 $(DESTDIR)$(USERUNITDIR)/jailwarden-notify.service
	$(INSTALL) -Dm644 units/jailwarden.sysusers $(DESTDIR)$(SYSUSERSDIR)/jailwarden.conf
	$(INSTALL) -Dm644 units/jailwarden.catalog $(DESTDIR)$(CATALOGDIR)/jailwarden.catalog
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m644 docs/*.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	$(if $(JAIL_EXAMPLES),$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples/jail.d)
	$(if $(JAIL_EXAMPLES),$(INSTALL) -m644 $(JAIL_EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/jail.d/)
	$(INSTALL) -d $(DESTDIR)$(FILTERDIR)
	$(INSTALL) -m644 $(FILTERS) $(DESTDIR)$(FILTERDIR)/
	@# Manual pages and completions, generated by the binary being installed.
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN) generate man "$$tmp" >/dev/null; \
	echo "$(INSTALL) -m644 jailwarden.8 jailwarden.toml.5 jailwarden-filter.5 -> $(DESTDIR)$(MANDIR)/man{8,5}/"; \
	$(INSTALL) -Dm644 "$$tmp/jailwarden.8" $(DESTDIR)$(MANDIR)/man8/jailwarden.8; \
	$(INSTALL) -Dm644 "$$tmp/jailwarden.toml.5" $(DESTDIR)$(MANDIR)/man5/jailwarden.toml.5; \
	$(INSTALL) -Dm644 "$$tmp/jailwarden-filter.5" $(DESTDIR)$(MANDIR)/man5/jailwarden-filter.5; \
	$(INSTALL) -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR); \
	echo "completions -> $(DESTDIR)$(BASHCOMPDIR)/jailwarden, $(DESTDIR)$(ZSHCOMPDIR)/_jailwarden, $(DESTDIR)$(FISHCOMPDIR)/jailwarden.fish"; \
	$(BIN) generate completions bash > $(DESTDIR)$(BASHCOMPDIR)/jailwarden; \
	$(BIN) generate completions zsh > $(DESTDIR)$(ZSHCOMPDIR)/_jailwarden; \
	$(BIN) generate completions fish > $(DESTDIR)$(FISHCOMPDIR)/jailwarden.fish; \
	chmod 644 $(DESTDIR)$(BASHCOMPDIR)/jailwarden $(DESTDIR)$(ZSHCOMPDIR)/_jailwarden $(DESTDIR)$(FISHCOMPDIR)/jailwarden.fish
	$(if $(DBUS_POLICY),$(INSTALL) -Dm644 $(DBUS_POLICY) $(DESTDIR)$(DBUSDIR)/system.d/org.jailwarden1.conf)
	$(if $(DBUS_SERVICE),$(INSTALL) -d $(DESTDIR)$(DBUSDIR)/system-services)
	$(if $(DBUS_SERVICE),sed 's|/usr/bin/jailwarden|$(BINDIR)/jailwarden|g' $(DBUS_SERVICE) \
		> $(DESTDIR)$(DBUSDIR)/system-services/org.jailwarden1.service)
	$(if $(DBUS_XML),$(INSTALL) -Dm644 $(DBUS_XML) $(DESTDIR)$(DBUSDIR)/interfaces/org.jailwarden1.xml)
	$(if $(POLKIT),$(INSTALL) -Dm644 $(POLKIT) $(DESTDIR)$(POLKITDIR)/org.jailwarden1.policy)
	$(if $(COCKPIT_MANIFEST),$(INSTALL) -d $(DESTDIR)$(COCKPITDIR))
	$(if $(COCKPIT),$(INSTALL) -m644 $(COCKPIT) $(DESTDIR)$(COCKPITDIR)/)
	$(if $(COCKPIT_MANIFEST),sed 's|/usr/bin/jailwarden|$(BINDIR)/jailwarden|g' $(COCKPIT_MANIFEST) \
		> $(DESTDIR)$(COCKPITDIR)/manifest.json)
	$(if $(COCKPIT_MANIFEST),chmod 644 $(DESTDIR)$(COCKPITDIR)/manifest.json)
	$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/jailwarden/jail.d
	@# Never overwrite an administrator's configuration.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/jailwarden/jailwarden.toml ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/jailwarden/jailwarden.toml"; \
	else \
		echo "$(INSTALL) -m644 config/jailwarden.toml $(DESTDIR)$(SYSCONFDIR)/jailwarden/jailwarden.toml"; \
		$(INSTALL) -m644 config/jailwarden.toml $(DESTDIR)$(SYSCONFDIR)/jailwarden/jailwarden.toml; \
	fi
ifneq ($(LIVE),)
	@# The service's user (units/jailwarden.sysusers).
	@if command -v systemd-sysusers >/dev/null 2>&1; then \
		systemd-sysusers $(SYSUSERSDIR)/jailwarden.conf; \
	elif ! getent passwd jailwarden >/dev/null; then \
		useradd --system --user-group --home-dir $(STATEDIR) --no-create-home \
			--shell /usr/sbin/nologin --comment "jailwarden intrusion prevention" jailwarden; \
	fi
	-journalctl --update-catalog
	@if [ -d /run/systemd/system ]; then \
		set -e; \
		systemctl daemon-reload; \
		busctl --timeout=10 call org.freedesktop.DBus /org/freedesktop/DBus \
			org.freedesktop.DBus ReloadConfig >/dev/null 2>&1 || true; \
		if ! $(BINDIR)/jailwarden check-config; then \
			echo "fix $(SYSCONFDIR)/jailwarden/jailwarden.toml, then: systemctl enable --now jailwarden" >&2; \
			exit 1; \
		fi; \
		systemctl enable jailwarden.service jailwarden.socket; \
		systemctl start jailwarden.socket; \
		systemctl restart jailwarden.service; \
		systemctl --no-pager --lines=0 status jailwarden.service || true; \
	else \
		echo; \
		echo "systemd is not running as PID 1 here, so no service was started."; \
		echo "Run the daemon in the foreground (as root; Ctrl-C stops it, bans stay in force):"; \
		echo "    $(BINDIR)/jailwarden daemon --foreground"; \
	fi
endif

# `make install start`: the service where systemd is PID 1 (install
# already enabled and started it: show its state); elsewhere the daemon
# itself, in the foreground, with the installed configuration.
start:
	@if [ "$$(id -u)" != 0 ]; then echo "make start needs root" >&2; exit 1; fi
	@if [ -d /run/systemd/system ]; then \
		systemctl start jailwarden.socket jailwarden.service; \
		systemctl --no-pager --lines=5 status jailwarden.service; \
	else \
		echo "starting in the foreground: $(BINDIR)/jailwarden daemon --foreground (Ctrl-C stops it; bans stay in force)"; \
		exec $(BINDIR)/jailwarden daemon --foreground; \
	fi

uninstall:
	@if [ -n "$(LIVE)" ] && [ "$$(id -u)" != 0 ]; then \
		echo "make uninstall needs root (or DESTDIR=...)" >&2; exit 1; fi
ifneq ($(LIVE),)
	@if [ -d /run/systemd/system ]; then \
		systemctl disable --now jailwarden.service jailwarden.socket || true; \
	fi
endif
	rm -f $(DESTDIR)$(BINDIR)/jailwarden \
		$(DESTDIR)$(UNITDIR)/jailwarden.service $(DESTDIR)$(UNITDIR)/jailwarden.socket \
		$(DESTDIR)$(USERUNITDIR)/jailwarden-notify.service \
		$(DESTDIR)$(SYSUSERSDIR)/jailwarden.conf \
		$(DESTDIR)$(CATALOGDIR)/jailwarden.catalog \
		$(DESTDIR)$(DBUSDIR)/system.d/org.jailwarden1.conf \
		$(DESTDIR)$(DBUSDIR)/system-services/org.jailwarden1.service \
		$(DESTDIR)$(DBUSDIR)/interfaces/org.jailwarden1.xml \
		$(DESTDIR)$(POLKITDIR)/org.jailwarden1.policy \
		$(DESTDIR)$(MANDIR)/man8/jailwarden.8 $(DESTDIR)$(MANDIR)/man5/jailwarden.toml.5 \
		$(DESTDIR)$(MANDIR)/man5/jailwarden-filter.5 \
		$(DESTDIR)$(BASHCOMPDIR)/jailwarden $(DESTDIR)$(ZSHCOMPDIR)/_jailwarden \
		$(DESTDIR)$(FISHCOMPDIR)/jailwarden.fish
	rm -rf $(DESTDIR)$(DOCDIR) $(DESTDIR)$(FILTERDIR) $(DESTDIR)$(COCKPITDIR)
	@# The compat symlink, when it is ours (make install-compat).
	@if [ -L $(DESTDIR)$(BINDIR)/fail2ban-client ] && [ "$$(readlink $(DESTDIR)$(BINDIR)/fail2ban-client)" = jailwarden ]; then \
		rm -f $(DESTDIR)$(BINDIR)/fail2ban-client; fi
	rmdir $(DESTDIR)$(dir $(FILTERDIR)) 2>/dev/null || true
ifneq ($(PURGE),)
	rm -rf $(DESTDIR)$(SYSCONFDIR)/jailwarden $(DESTDIR)$(STATEDIR)
endif
ifneq ($(LIVE),)
	@# Nobody keeps the bans any more: lift them (permanent ones would stay).
	-@command -v nft >/dev/null 2>&1 && nft delete table inet jailwarden 2>/dev/null; true
	-@journalctl --update-catalog 2>/dev/null; true
	@if [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
		busctl --timeout=10 call org.freedesktop.DBus /org/freedesktop/DBus \
			org.freedesktop.DBus ReloadConfig >/dev/null 2>&1 || true; \
	fi
ifneq ($(PURGE),)
	-@getent passwd jailwarden >/dev/null && userdel jailwarden; true
endif
	@echo "jailwarden removed$(if $(PURGE),, (kept $(SYSCONFDIR)/jailwarden and $(STATEDIR); PURGE=1 removes them))"
endif

# fail2ban-client for the scripts and monitoring written for Fail2ban: a
# symlink to jailwarden, which answers Fail2ban's client commands when
# called by that name. Not part of `install` nor of the .deb (it must not
# conflict with Fail2ban's package): install it once Fail2ban is removed.
# A fail2ban-client that is not our symlink is never replaced.
install-compat:
	@if [ -n "$(LIVE)" ] && [ "$$(id -u)" != 0 ]; then \
		echo "make install-compat needs root (or DESTDIR=...)" >&2; exit 1; fi
	@link=$(DESTDIR)$(BINDIR)/fail2ban-client; \
	if [ -e "$$link" ] && ! { [ -L "$$link" ] && [ "$$(readlink "$$link")" = jailwarden ]; }; then \
		echo "$$link exists and is not jailwarden's (is Fail2ban still installed? apt remove fail2ban first)" >&2; \
		exit 1; \
	fi; \
	$(INSTALL) -d $(DESTDIR)$(BINDIR); \
	ln -sfn jailwarden "$$link"; \
	echo "$$link -> jailwarden (jailwarden answers as fail2ban-client)"

uninstall-compat:
	@link=$(DESTDIR)$(BINDIR)/fail2ban-client; \
	if [ -L "$$link" ] && [ "$$(readlink "$$link")" = jailwarden ]; then \
		rm -f "$$link"; echo "removed $$link"; \
	else \
		echo "no fail2ban-client of jailwarden's in $(DESTDIR)$(BINDIR)"; \
	fi

# The man pages (gzipped, as Debian policy wants) and completions the
# package ships, generated by the binary it packages.
generated: $(if $(NO_BUILD),,build)
	rm -rf $(GEN)
	mkdir -p $(GEN)/man $(GEN)/completions
	$(BIN) generate man $(GEN)/man >/dev/null
	gzip -9nf $(GEN)/man/*
	$(BIN) generate completions bash > $(GEN)/completions/jailwarden
	$(BIN) generate completions zsh > $(GEN)/completions/_jailwarden
	$(BIN) generate completions fish > $(GEN)/completions/jailwarden.fish

# target/debian/jailwarden_<version>-1_<arch>.deb
deb: generated
	$(CARGO) deb --no-build $(DEB_FLAGS)

# systemd-analyze verify and security on the units, as tests/units.rs does.
check-units:
	$(CARGO) test --test units
