/* /init of the vm lane's guest (a static program; the initramfs holds nothing else).
 *
 * Dirties a working set of memory without pause and checks every page of it against a version
 * table kept in guest memory too: a page holds 512 words, each a function of (page, version,
 * word), and the table says which version each page must hold. A page that comes back stale (an
 * older version: a migration lost a write), torn (two versions) or foreign is counted bad and
 * rewritten, so one corruption counts once. Once per tick it prints, on the console (ttyS0):
 *
 *   HYMIG-GUEST tick=N bad=B pass=P t=MS
 *
 * N counts ticks from 1 and never repeats: a guest that resumed twice would print it twice. B is
 * the number of bad pages found so far (must stay 0), P the full check passes over the working
 * set, MS the guest's own monotonic milliseconds (frozen while the VM is paused, so the host
 * measures a blackout from when lines arrive, not from MS).
 *
 * Kernel command line knobs (defaults in brackets): hymig.ws_mib [96] working set,
 * hymig.dirty [256] pages rewritten per tick, hymig.check [1024] pages checked per tick,
 * hymig.period_ms [20] tick period (the rest of a tick is spent sleeping).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE_WORDS 512 /* 4 KiB pages of 64-bit words */

static uint64_t word_value(uint64_t page, uint64_t version, uint64_t word) {
  /* splitmix64 of the triple: every (page, version, word) gives an unrelated value */
  uint64_t x = page * 0x9E3779B97F4A7C15ull + version * 0xD1B54A32D192ED03ull + word;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static void say(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static uint64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void hang(const char *why) {
  say("HYMIG-GUEST error: ");
  say(why);
  say("\n");
  for (;;) pause();
}

/* Value of "hymig.KEY=" on the kernel command line, or dflt. */
static uint64_t knob(const char *cmdline, const char *key, uint64_t dflt) {
  char pat[64];
  snprintf(pat, sizeof pat, "hymig.%s=", key);
  const char *p = strstr(cmdline, pat);
  if (!p) return dflt;
  return strtoull(p + strlen(pat), NULL, 10);
}

static void write_page(uint64_t *mem, uint64_t page, uint64_t version) {
  uint64_t *w = mem + page * PAGE_WORDS;
  for (uint64_t i = 0; i < PAGE_WORDS; i++) w[i] = word_value(page, version, i);
}

static int page_ok(const uint64_t *mem, uint64_t page, uint64_t version) {
  const uint64_t *w = mem + page * PAGE_WORDS;
  for (uint64_t i = 0; i < PAGE_WORDS; i++)
    if (w[i] != word_value(page, version, i)) return 0;
  return 1;
}

int main(void) {
  mkdir("/dev", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  int con = open("/dev/console", O_RDWR);
  if (con >= 0) {
    dup2(con, 0);
    dup2(con, 1);
    dup2(con, 2);
  }
  mkdir("/proc", 0755);
  mount("proc", "/proc", "proc", 0, NULL);
  char cmdline[4096] = "";
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    cmdline[n > 0 ? n : 0] = 0;
    close(fd);
  }
  const uint64_t pages = knob(cmdline, "ws_mib", 96) * 256;
  const uint64_t dirty = knob(cmdline, "dirty", 256);
  uint64_t check = knob(cmdline, "check", 1024);
  const uint64_t period = knob(cmdline, "period_ms", 20);
  if (pages == 0 || check == 0) hang("hymig.ws_mib and hymig.check must be positive");
  if (check > pages) check = pages;

  uint64_t *mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  uint64_t *ver = mmap(NULL, pages * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED || ver == MAP_FAILED) hang("cannot map the working set (hymig.ws_mib too large?)");
  uint64_t version = 0;
  for (uint64_t p = 0; p < pages; p++) {
    ver[p] = ++version;
    write_page(mem, p, ver[p]);
  }
  char line[256];
  snprintf(line, sizeof line, "HYMIG-GUEST start ws_pages=%llu dirty=%llu check=%llu period_ms=%llu\n",
           (unsigned long long)pages, (unsigned long long)dirty, (unsigned long long)check, (unsigned long long)period);
  say(line);

  uint64_t rng = 0x243F6A8885A308D3ull, tick = 0, bad = 0, pass = 0, cursor = 0;
  uint64_t next = now_ms();
  for (;;) {
    tick++;
    for (uint64_t i = 0; i < dirty; i++) {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      const uint64_t p = rng % pages;
      ver[p] = ++version;
      write_page(mem, p, ver[p]);
    }
    for (uint64_t i = 0; i < check; i++) {
      if (!page_ok(mem, cursor, ver[cursor])) {
        bad++;
        snprintf(line, sizeof line, "HYMIG-GUEST BAD page=%llu tick=%llu version=%llu\n", (unsigned long long)cursor,
                 (unsigned long long)tick, (unsigned long long)ver[cursor]);
        say(line);
        write_page(mem, cursor, ver[cursor]);
      }
      if (++cursor == pages) {
        cursor = 0;
        pass++;
      }
    }
    const uint64_t t = now_ms();
    snprintf(line, sizeof line, "HYMIG-GUEST tick=%llu bad=%llu pass=%llu t=%llu\n", (unsigned long long)tick,
             (unsigned long long)bad, (unsigned long long)pass, (unsigned long long)t);
    say(line);
    next += period;
    if (next > t) {
      const uint64_t ms = next - t;
      struct timespec d = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
      nanosleep(&d, NULL);
    } else {
      next = t; /* behind: no catching up in a burst */
    }
  }
}
