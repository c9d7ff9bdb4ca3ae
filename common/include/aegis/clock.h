/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The monotonic clock the daemons time things with (drains, deadlines, restarts, debounce): not
 * moved by changes to the wall clock. Decision code takes time as a parameter instead (STYLE:
 * injected clock); this is where the callers read it.
 */
#ifndef AEGIS_CLOCK_H
#define AEGIS_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t aegis_monotonic_ms(void);

#endif
