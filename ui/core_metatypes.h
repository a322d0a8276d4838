#pragma once

// Core's plain structs cross the worker thread boundary by value in queued signals: declare them
// to Qt's meta-type system once, before any header uses them in a signal.
#include <QMetaType>

#include "analysis/gradient_profile.h"
#include "analysis/shift_analysis.h"
#include "data/data_request.h"
#include "io/session.h"
#include "model/model_inspection.h"
#include "train/pretrain.h"
#include "train/trainer.h"
#include "workflow/fine_tuning.h"

Q_DECLARE_METATYPE(scalpel::ModelInspection)
Q_DECLARE_METATYPE(scalpel::ModelChoices)
Q_DECLARE_METATYPE(scalpel::PretrainOptions)
Q_DECLARE_METATYPE(scalpel::PretrainProgress)
Q_DECLARE_METATYPE(scalpel::PretrainResult)
Q_DECLARE_METATYPE(scalpel::DataRequest)
Q_DECLARE_METATYPE(scalpel::DataSummary)
Q_DECLARE_METATYPE(scalpel::ShiftSnapshot)
Q_DECLARE_METATYPE(scalpel::ShiftAnalysis)
Q_DECLARE_METATYPE(scalpel::TrainOptions)
Q_DECLARE_METATYPE(scalpel::TrainEvent)
Q_DECLARE_METATYPE(scalpel::FineTuneRun)
Q_DECLARE_METATYPE(scalpel::FreezePlan)
Q_DECLARE_METATYPE(scalpel::GradientProfile)
Q_DECLARE_METATYPE(scalpel::Session)
