/*-------------------------------------------------------------------------
 *
 * omnichan.h
 *	  Declarations shared by the C files of omnichan: configuration
 *	  parameters and module-wide constants.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_H
#define OMNICHAN_H

#ifndef OMNICHAN_VERSION
#error "OMNICHAN_VERSION must be defined by the build (see Makefile)"
#endif

/* configuration parameters (omnichan.c) */
extern PGDLLIMPORT bool omnichan_count_manual_quotations;

#endif							/* OMNICHAN_H */
