@echo off
rem apply.cmd: lfengine drop-in for the GATE Learning Framework's PyTorch wrapper (lfengine 0.1.0).
rem GATE runs: apply.cmd MODELPREFIX METAFILE [WRAPPERDIR] [OPTION ...]
rem Interpreter: %PYTHON_BIN%, or when it is empty the recorded one, then python.
setlocal
set "RECORDED_PYTHON="
if not defined LFENGINE_HOME set "LFENGINE_HOME="
if "%~2"=="" goto usage
set "PY=%PYTHON_BIN%"
if defined PY set "PY=%PY:"=%"
if not defined PY if defined RECORDED_PYTHON if exist "%RECORDED_PYTHON%" set "PY=%RECORDED_PYTHON%"
if not defined PY set "PY=python"
set "LFENGINE_INIT=%LFENGINE_HOME%\lfengine\__init__.py"
if defined LFENGINE_HOME if exist "%LFENGINE_INIT%" set "PYTHONPATH=%LFENGINE_HOME%;%PYTHONPATH%"
set "PYTHONSAFEPATH=1"
set "MODEL=%~1"
set "META=%~2"
shift
shift
set "THIRD=%~1"
if defined THIRD if not "%THIRD:~0,1%"=="-" shift
set "REST="
:collect
if "%~1"=="" goto run
set REST=%REST% %1
shift
goto collect
:run
"%PY%" -m lfengine gate-apply "%MODEL%" --cuda False --metafile "%META%"%REST%
exit /b %ERRORLEVEL%
:usage
echo usage: apply.cmd MODELPREFIX METAFILE [WRAPPERDIR] [OPTION ...] 1>&2
exit /b 1
